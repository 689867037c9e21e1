"""The sampling plan: which images an annotator sees, in which order, with which caption first.

Deterministic from the run directories' samples.csv, ``n`` and the seed, so every annotator of a
study answers the same items (inter-annotator agreement needs that), a restarted server finds
the same plan again, and an exported page can be checked against it on import. Items are
stratified by (run directory, run, predicate) by round robin over shuffled strata; a share of
the suite's reference images (attention check, human ceiling; one per triple, since the ceiling
is bootstrapped over triples) and of repeated items (intra-annotator consistency, shown again
later with the captions swapped) is mixed in. Each annotator sees the items in an order of their
own, caption order included (``Plan.for_annotator``, seeded by the name): with one order for
all, a shared habit such as "press 1 when unsure" would read as agreement.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from relbench.errors import UserError

SIDES = ("pos", "neg")
KINDS = ("main", "reference", "repeat")
#: caption: which of the two captions (g+, g-) matches the image; predicate: which relation
#: between the tested subject and object the image shows (img_pos only, for the confusion matrix)
QUESTIONS = ("caption", "predicate")


@dataclass(frozen=True)
class Item:
    """One question: does image ``image_key`` show the relation text of g+ or of g-?

    ``side`` says which of the case's images it is (img_pos is right when g+'s text is chosen);
    ``order`` is the caption order on screen (order[0] is key 1). Ids come from content, never
    from a request, so a request can only name an item, not a path.
    """

    id: str
    run_dir: int  # index into Plan.run_dirs
    run: str
    case_id: str
    item_id: str  # the suite item (Case.item_id), not this question's ``id``
    predicate: str
    negative_kind: str
    side: str
    image_key: str
    text_pos: str
    text_neg: str
    order: tuple[str, str]
    kind: str = "main"
    copy_of: str | None = None
    question: str = "caption"
    subject: str = ""
    object: str = ""
    #: predicate questions: the candidate predicates in the order shown (choice 1 is the first)
    choices: tuple[str, ...] = ()

    def caption(self, shown: int) -> str:
        """Caption shown as choice ``shown`` (1 or 2; 1 to len(choices) for a predicate question)."""
        if self.question == "predicate":
            return f"{self.subject} {self.choices[shown - 1]} {self.object}"
        return self.text_pos if self.order[shown - 1] == "pos" else self.text_neg

    @property
    def n_choices(self) -> int:
        return len(self.choices) if self.question == "predicate" else 2

    def options(self) -> list[tuple[int, str]]:
        """(choice number, caption) of every option, in the order shown."""
        return [(n, self.caption(n)) for n in range(1, self.n_choices + 1)]

    @property
    def prompt(self) -> str:
        if self.question == "predicate":
            return f"Which relation between the {self.subject} and the {self.object} does the image show?"
        return "Which caption matches the image?"

    def answer_of(self, choice: int) -> str:
        """choice 1/2/0 -> 'pos' / 'neg' / 'cant_tell'; a predicate question: 'pos' when the
        asked predicate was chosen, 'neg' for any other."""
        if choice == 0:
            return "cant_tell"
        if self.question == "predicate":
            return "pos" if self.choices[choice - 1] == self.predicate else "neg"
        return self.order[choice - 1]

    def seen_of(self, choice: int) -> str | None:
        """The predicate chosen (predicate questions; None for can't tell and caption questions)."""
        return self.choices[choice - 1] if self.question == "predicate" and choice else None

    def swapped(self) -> "Item":
        """The same question with its options in reverse order (a repeat is shown so)."""
        return Item(**{**asdict(self), "order": self.order[::-1], "choices": self.choices[::-1]})


@dataclass(frozen=True)
class Plan:
    run_dirs: tuple[Path, ...]
    seed: int
    n: int
    items: tuple[Item, ...]
    id: str = ""
    by_id: dict = field(default_factory=dict, compare=False, repr=False)
    notes: tuple[str, ...] = ()  # what the person building the study should know (one line each)
    annotator: str | None = None  # whose order ``items`` are in (None: the plan's own)
    question: str = "caption"

    def for_annotator(self, annotator: str) -> Plan:
        """The same items (and plan id) in ``annotator``'s own order, seeded by plan id and name:
        items shuffled with each repeated item's original in the first half, caption order drawn
        per item, each repeat later in the second half with its original's captions swapped."""
        rng = random.Random(f"{self.id}\0{annotator}")
        repeats = [it for it in self.items if it.kind == "repeat"]
        originals = {it.copy_of for it in repeats}
        rest = [it for it in self.items if it.kind != "repeat"]
        others = [it for it in rest if it.id not in originals]
        rng.shuffle(others)
        cut = max(len(rest) // 2 - len(originals), 0)
        head = [it for it in rest if it.id in originals] + others[:cut]
        rng.shuffle(head)
        chosen = [_with_order(it, rng) for it in head + others[cut:]]
        shown = {it.id: it for it in chosen}
        for rep in repeats:
            orig = shown[rep.copy_of]
            _insert_later(chosen, Item(**{**asdict(rep), "order": orig.order, "choices": orig.choices}).swapped(),
                          orig, rng)
        return Plan(self.run_dirs, self.seed, self.n, tuple(chosen), self.id, {it.id: it for it in chosen},
                    self.notes, annotator, self.question)

    def image_path(self, item: Item) -> Path:
        from relbench.engine.store import ImageStore

        return ImageStore(self.run_dirs[item.run_dir] / "images").path(item.image_key)


def _question_id(run: str, case_id: str, side: str, image_key: str, kind: str) -> str:
    return hashlib.sha256(f"{run}\0{case_id}\0{side}\0{image_key}\0{kind}".encode()).hexdigest()[:16]


def _candidates(index: int, run_dir: Path, question: str = "caption") -> tuple[list[Item], list[Item]]:
    """(generated images, reference images) of one run directory, captions in g+, g- order; a
    predicate question asks of img_pos only, over the predicates the directory's cases ask."""
    from relbench.results.read import load_run_dir
    from relbench.engine.store import ImageStore

    rd = load_run_dir(run_dir, human=False)  # the usual one-line errors for a missing or broken directory
    refs = {name for name, r in rd.summary["runs"].items() if r.get("is_reference")}
    store = ImageStore(run_dir / "images")
    gen, ref = [], []
    choices = predicate_choices({r["predicate"] for r in rd.rows}) if question == "predicate" else ()
    for r in rd.rows:
        for side in SIDES if question == "caption" else ("pos",):
            key = r.get(f"image_{side}") or ""
            if not key or not store.has(key):
                continue
            kind = "reference" if r["run"] in refs else "main"
            qkind = kind if question == "caption" else f"{kind}\0predicate"
            item = Item(
                id=_question_id(r["run"], r["case_id"], side, key, qkind), run_dir=index, run=r["run"],
                case_id=r["case_id"], item_id=r["item_id"], predicate=r["predicate"], negative_kind=r["negative_kind"],
                side=side, image_key=key, text_pos=r["graph_pos"], text_neg=r["graph_neg"], order=("pos", "neg"),
                kind=kind, question=question, subject=r["subject"], object=r["object"], choices=choices,
            )
            (ref if kind == "reference" else gen).append(item)
    return gen, ref


def predicate_choices(asked) -> tuple[str, ...]:
    """A predicate question's candidates: the predicates the cases ask, in vocabulary order
    (any the shipped vocabulary lacks after, sorted)."""
    from relbench.spec.predicates import load_vocabulary

    names = load_vocabulary().names()
    return tuple([p for p in names if p in asked] + sorted(set(asked) - set(names)))


def _round_robin(items: list[Item], strata_of, k: int, rng: random.Random) -> list[Item]:
    """Up to k items, one stratum at a time (strata and their members shuffled by the seed)."""
    strata: dict = {}
    for it in items:
        strata.setdefault(strata_of(it), []).append(it)
    queues = [strata[s] for s in sorted(strata)]
    for q in queues:
        rng.shuffle(q)
    rng.shuffle(queues)
    out: list[Item] = []
    while len(out) < k and any(queues):
        for q in queues:
            if q and len(out) < k:
                out.append(q.pop())
    return out


def build_plan(run_dirs: list[str | Path], n: int = 100, seed: int = 0, reference_share: float = 0.1,
               repeat_share: float = 0.1, question: str = "caption") -> Plan:
    """The plan for these run directories: ``n`` items at most (fewer if the runs hold fewer)."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if question not in QUESTIONS:
        raise UserError(f"--question {question!r}: allowed {', '.join(QUESTIONS)}")
    dirs = tuple(Path(d).resolve() for d in run_dirs)
    gen: list[Item] = []
    ref: list[Item] = []
    seen: set[str] = set()
    for i, d in enumerate(dirs):
        g, r = _candidates(i, d, question)
        for it in g + r:  # the same image of the same run in two directories is one item
            if it.id not in seen:
                seen.add(it.id)
                (ref if it.kind == "reference" else gen).append(it)
    if not gen and not ref:
        raise UserError(f"{', '.join(map(str, dirs))}: no images to annotate (images/ holds none of samples.csv's keys)")
    rng = random.Random(seed)
    refs, notes = _references(ref, n, reference_share, rng) if gen else (
        _round_robin(ref, lambda it: (it.run_dir, it.predicate), min(len(ref), n), rng), [])
    n_rep = round(n * repeat_share)
    main = _round_robin(gen, lambda it: (it.run_dir, it.run, it.predicate), n - len(refs) - n_rep, rng)
    chosen = main + refs
    rng.shuffle(chosen)
    chosen = [_with_order(it, rng) for it in chosen]
    # repeats: an item from the first half, shown again in the second half with captions swapped
    n_rep = min(n_rep, len(chosen) // 2)
    originals = rng.sample(chosen[: max(1, len(chosen) // 2)], n_rep) if n_rep else []
    for orig in originals:
        rkind = "repeat" if question == "caption" else "repeat\0predicate"
        copy = Item(**{**asdict(orig), "id": _question_id(orig.run, orig.case_id, orig.side, orig.image_key, rkind),
                       "kind": "repeat", "copy_of": orig.id}).swapped()
        _insert_later(chosen, copy, orig, rng)
    items = tuple(chosen)
    plan_items = [[it.id, it.run, it.case_id, it.side, it.image_key, it.order, it.kind]
                  + ([list(it.choices)] if question == "predicate" else []) for it in items]
    digest = hashlib.sha256(json.dumps({"seed": seed, "n": n, "items": plan_items}, sort_keys=True).encode()).hexdigest()[:16]
    return Plan(dirs, seed, n, items, digest, {it.id: it for it in items}, tuple(notes), question=question)


def _references(ref: list[Item], n: int, share: float, rng: random.Random) -> tuple[list[Item], list[str]]:
    """Reference images for a plan of ``n`` beside generated ones, one per triple (the human
    ceiling is bootstrapped over triples and has an interval only from MIN_TRIPLES of them on):
    ``share`` of the plan but at least MIN_TRIPLES where that leaves half of it to the rest,
    and a note when the ceiling will have no interval."""
    from relbench.stats.bootstrap import MIN_TRIPLES

    if not ref:
        return [], []
    want, notes = max(round(n * share), MIN_TRIPLES), []
    if want > n // 2:
        want = round(n * share)
        notes.append(f"--n {n} leaves room for {want} reference image(s); the human ceiling has an interval from "
                     f"{MIN_TRIPLES} on (--n {2 * MIN_TRIPLES} or more)")
    by_item: dict = {}
    for it in ref:
        by_item.setdefault((it.run_dir, it.item_id), []).append(it)
    one = [rng.choice(by_item[t]) for t in sorted(by_item)]
    picked = _round_robin(one, lambda it: (it.run_dir, it.predicate), want, rng)
    if not notes and len(picked) < MIN_TRIPLES:
        notes.append(f"the reference run has images of only {len(one)} triples: the human ceiling has an interval "
                     f"from {MIN_TRIPLES} on")
    return picked, notes


def _insert_later(items: list[Item], copy: Item, orig: Item, rng: random.Random) -> None:
    """Put a repeat after its original and in the second half (in place)."""
    pos = items.index(orig)
    items.insert(rng.randint(max(pos + 1, len(items) // 2), len(items)), copy)


def _with_order(item: Item, rng: random.Random) -> Item:
    """Caption order drawn; a predicate question's options shuffled (so no predicate owns a key)."""
    order = ("pos", "neg") if rng.random() < 0.5 else ("neg", "pos")
    choices = list(item.choices)
    if item.question == "predicate":
        rng.shuffle(choices)
    return Item(**{**asdict(item), "order": order, "choices": tuple(choices)})
