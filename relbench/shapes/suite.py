"""The shapes suite: a deterministic triple set over the predicates the world draws."""

from __future__ import annotations

import random

from relbench.spec.data import Reference, SuiteItem, Triple
from relbench.errors import UserError
from relbench.spec.predicates import Vocabulary
from relbench.shapes.world import COLOURS, DRAWABLE, SHAPE_KINDS

#: the default benchmark's predicates (far from and the on-variants are drawable too)
DEFAULT_PREDICATES = ("above", "below", "left of", "right of", "near", "in", "on", "in front of", "behind")


def shapes_items(triples_per_predicate: int, vocab: Vocabulary, predicates=None, seed: int = 0) -> list[SuiteItem]:
    """Triples '<colour> <shape> <predicate> <colour> <shape>' with two distinct colours.

    Each item's objects depend only on (seed, predicate, index), so growing the suite keeps
    the earlier items unchanged.
    """
    names = []
    for i, p in enumerate(predicates or DEFAULT_PREDICATES):
        name = vocab.get(p, where=f"suite.predicates.{i}").name
        if name not in DRAWABLE:
            raise UserError(f"suite.predicates.{i}: the shapes world cannot draw {name!r} (it draws: {', '.join(DRAWABLE)})")
        names.append(name)
    items = []
    for pred in names:
        for i in range(triples_per_predicate):
            rng = random.Random(f"shapes-suite:{seed}:{pred}:{i}")
            c1, c2 = rng.sample(list(COLOURS), 2)
            subject = f"{c1} {rng.choice(SHAPE_KINDS)}"
            obj = f"{c2} {rng.choice(SHAPE_KINDS)}"
            item_id = f"shapes-{pred.replace(' ', '_')}-{i:03d}"
            # reference images are rendered on demand by the reference source (shapes world)
            items.append(SuiteItem(id=item_id, graph=(Triple(subject, pred, obj),), reference=Reference(image=None)))
    return items
