"""Negative graphs g- for a positive g+: directional swap and predicate replacement.

Both are deterministic functions of (negatives seed, item id), so adding or reordering suite
items never changes the negatives of the others.
"""

from __future__ import annotations

import random
from typing import get_args

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


def negatives_for(item: SuiteItem, kinds: list[NegativeKind], vocab: Vocabulary, seed: int) -> list[tuple[NegativeKind, Graph]]:
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
) -> tuple[list[Case], list[str]]:
    """Cases for every item x seed; returns (cases, ids of items with no applicable negative).

    per_item="one" picks one negative kind per item (seeded), as the seed protocol did
    (160 triples x 3 seeds = 480 cases); "all" makes one case per applicable kind.
    The same g- is used for every seed of an item: seeds are repeated draws, not new negatives.
    """
    cases: list[Case] = []
    skipped: list[str] = []
    for item in items:
        options = negatives_for(item, kinds, vocab, negatives_seed)
        if not options:
            skipped.append(item.id)
            continue
        if per_item == "one":
            pick = random.Random(f"relbench-negative-kind:{negatives_seed}:{item.id}")
            options = [options[pick.randrange(len(options))]]
        for kind, neg in options:
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
                        prompt=item.prompt,
                    )
                )
    return cases, skipped
