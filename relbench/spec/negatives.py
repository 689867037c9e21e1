"""Negative graphs g- for a positive g+: directional swap, predicate replacement, hard and
adversarial replacements.

All are deterministic functions of (negatives seed, item id) and, for hard and adversarial,
of one earlier run's files (``NegativeSource``), so adding or reordering suite items never
changes the negatives of the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, get_args

from relbench.errors import UserError
from relbench.spec.data import Case, Graph, NegativeKind, SuiteItem, Triple
from relbench.spec.predicates import Vocabulary

NEGATIVE_KINDS: tuple[NegativeKind, ...] = get_args(NegativeKind)


def swap(graph: Graph, vocab: Vocabulary, index: int = 0) -> Graph | None:
    """'dog riding horse' -> 'horse riding dog'; None for a symmetric predicate (same meaning)."""
    t = graph[index]
    if vocab.get(t.predicate).symmetric or t.subject == t.object:
        return None
    return graph[:index] + (Triple(t.object, t.predicate, t.subject),) + graph[index + 1 :]


def replace(graph: Graph, vocab: Vocabulary, rng: random.Random, index: int = 0) -> Graph | None:
    """'dog holding ball' -> 'dog wearing ball', from the predicate's declared contrasts."""
    t = graph[index]
    options = [vocab.get(c).name for c in vocab.get(t.predicate).contrast]
    if not options:
        return None
    new = options[rng.randrange(len(options))]
    return graph[:index] + (Triple(t.subject, new, t.object),) + graph[index + 1 :]


@dataclass(frozen=True)
class NegativeSource:
    """What one earlier run tells the builder (read by relbench.results.negative_source).

    ``seen``: asked predicate -> {predicate: share of that run's img_pos in which the judge saw
    it}, the confusion row; ``score``: (item id, g+, candidate g-) -> how strongly the judge
    sees the candidate in that run's img_pos of the item, None where it cannot tell;
    ``identity``: the run directory, run, judge, summary.json sha256 and run fingerprint, for
    the manifest.
    """

    seen: dict[str, dict[str, float]] = field(default_factory=dict)
    score: Callable[[str, Graph, Graph], float | None] | None = None
    identity: dict = field(default_factory=dict)

    def checked(self, vocab: Vocabulary, where: str) -> NegativeSource:
        """The same source with every predicate name canonical; an unknown name is a UserError."""
        def canonical(mapping: dict, what: str) -> dict:
            out: dict = {}
            for text, value in mapping.items():
                name = vocab.get(text, where=where).name
                if name in out:  # an alias and its predicate: which share holds is not ours to guess
                    raise UserError(f"{where}: {what} names predicate {name!r} twice (as {text!r} and another name)")
                out[name] = value
            return out

        rows = canonical(self.seen, "the confusion matrix")
        seen = {a: {p: float(v) for p, v in canonical(row, f"row {a!r}").items()} for a, row in rows.items()}
        return NegativeSource(seen, self.score, self.identity)

    def ranked(self, asked: str, top_k: int) -> list[str]:
        """The ``top_k`` predicates seen most often in place of ``asked``: the asked one itself
        and predicates never seen are no replacement; equal shares are ordered by name so
        the choice depends on the file only."""
        row = self.seen.get(asked, {})
        order = sorted((p for p, v in row.items() if p != asked and v > 0), key=lambda p: (-row[p], p))
        return order[:top_k]


def hard(graph: Graph, vocab: Vocabulary, rng: random.Random, index: int = 0,
         source: NegativeSource | None = None, top_k: int = 1) -> Graph | None:
    """'dog left of ball' -> 'dog above ball' when a run drew "above" most often where "left of"
    was asked: one of the ``top_k`` most confused predicates, drawn by the seeded RNG; with no
    source, a declared contrast (as ``replace``)."""
    if source is None:
        return replace(graph, vocab, rng, index)
    t = graph[index]
    options = source.ranked(vocab.get(t.predicate).name, top_k)
    if not options:
        return None
    new = options[rng.randrange(len(options))]
    return graph[:index] + (Triple(t.subject, new, t.object),) + graph[index + 1 :]


def candidates(graph: Graph, vocab: Vocabulary, index: int = 0, source: NegativeSource | None = None,
               top_k: int = 1) -> list[Graph]:
    """Every g- an adversarial negative is chosen among, in a fixed order: the swap, each
    declared contrast, then the ``top_k`` most confused predicates of the source."""
    t = graph[index]
    preds = list(vocab.get(t.predicate).contrast)
    if source is not None:
        preds += source.ranked(vocab.get(t.predicate).name, top_k)
    out = [swap(graph, vocab, index)]
    out += [graph[:index] + (Triple(t.subject, vocab.get(p).name, t.object),) + graph[index + 1 :] for p in preds]
    unique: list[Graph] = []
    for g in out:
        if g is not None and g != graph and g not in unique:
            unique.append(g)
    return unique


def adversarial(item: SuiteItem, vocab: Vocabulary, source: NegativeSource, index: int = 0,
                top_k: int = 1) -> Graph | None:
    """The candidate g- the source run's judge sees most strongly in the generator's own img_pos
    of this item (the first candidate on equal scores); None where it scores none of them."""
    if source.score is None:
        raise ValueError("adversarial negatives need a source run's per-sample scores")
    best, best_score = None, None
    for g in candidates(item.graph, vocab, index, source, top_k):
        s = source.score(item.id, item.graph, g)
        if s is not None and (best_score is None or s > best_score):
            best, best_score = g, s
    return best


def negatives_for(item: SuiteItem, kinds: list[NegativeKind], vocab: Vocabulary, seed: int,
                  source: NegativeSource | None = None, top_k: int = 1) -> list[tuple[NegativeKind, Graph]]:
    """Every applicable (kind, g-) for an item, in the order of ``kinds``.

    The corrupted triple is chosen by the seeded RNG so multi-triple graphs are covered too.
    """
    rng = random.Random(f"relbench-negatives:{seed}:{item.id}")
    index = rng.randrange(len(item.graph))
    out = []
    for kind in kinds:
        if kind == "swap":
            neg = swap(item.graph, vocab, index)
        elif kind == "replace":
            neg = replace(item.graph, vocab, rng, index)
        elif kind == "hard":
            neg = hard(item.graph, vocab, rng, index, source, top_k)
        elif kind == "adversarial":
            if source is None:
                raise ValueError("adversarial negatives need a source run (negatives.confusion)")
            neg = adversarial(item, vocab, source, index, top_k)
        else:
            raise ValueError(f"unknown negative kind {kind!r} (allowed: {', '.join(NEGATIVE_KINDS)})")
        if neg is not None and neg != item.graph:
            out.append((kind, neg))
    return out


def build_cases(
    items: list[SuiteItem],
    seeds: list[int],
    kinds: list[NegativeKind],
    vocab: Vocabulary,
    per_item: str = "one",
    negatives_seed: int = 0,
    source: NegativeSource | None = None,
    top_k: int = 1,
) -> tuple[list[Case], list[str]]:
    """Cases for every item x seed; returns (cases, ids of items with no applicable negative).

    per_item="one" picks one negative kind per item (seeded), as the seed protocol did
    (160 triples x 3 seeds = 480 cases); "all" makes one case per applicable kind.
    The same g- is used for every seed of an item: seeds are repeated draws, not new negatives.
    """
    cases: list[Case] = []
    skipped: list[str] = []
    for item in items:
        options = negatives_for(item, kinds, vocab, negatives_seed, source, top_k)
        if not options:
            skipped.append(item.id)
            continue
        if per_item == "one":
            pick = random.Random(f"relbench-negative-kind:{negatives_seed}:{item.id}")
            options = [options[pick.randrange(len(options))]]
        for kind, neg in options:
            # negatives change one triple; the case records which (the tested relation)
            changed = next(i for i, (p, n) in enumerate(zip(item.graph, neg)) if p != n)
            for seed in seeds:
                suffix = f"{kind}-s{seed}" if per_item == "all" else f"s{seed}"
                cases.append(
                    Case(
                        id=f"{item.id}-{suffix}",
                        item_id=item.id,
                        pos=item.graph,
                        neg=neg,
                        negative_kind=kind,
                        seed=seed,
                        reference=item.reference,
                        questions=item.questions,
                        nodes=item.nodes,
                        prompt=item.prompt,
                        changed_triple=changed,
                    )
                )
    return cases, skipped
