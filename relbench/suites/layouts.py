"""Object layouts for layout-conditioned generators: a canonical box pair per geometric
predicate (the ``rule`` layout) and the suite's own reference boxes (the ``reference`` layout).

A layout maps object names to boxes as fractions of the image, (x_min, y_min, x_max, y_max)
in [0, 1] with y growing downward, so it does not depend on the image size. Every rule box
pair is judged as its predicate by relbench's spatial rules (tests/test_gligen_generator.py),
so a generator told these boxes is told a layout the spatial metric would accept.
See docs/generators.md ("gligen") for the table in prose.
"""

from __future__ import annotations

from relbench.spec.data import Box, Case, Graph
from relbench.spec.predicates import Vocabulary

#: a sorted tuple of (object name, box): hashable, so requests carrying it stay hashable
Layout = tuple[tuple[str, Box], ...]

#: canonical predicate -> (subject box, object box), fractions of the image
RULE_BOXES: dict[str, tuple[Box, Box]] = {
    "left of": ((0.05, 0.30, 0.40, 0.70), (0.60, 0.30, 0.95, 0.70)),
    "right of": ((0.60, 0.30, 0.95, 0.70), (0.05, 0.30, 0.40, 0.70)),
    "above": ((0.30, 0.05, 0.70, 0.40), (0.30, 0.60, 0.70, 0.95)),
    "below": ((0.30, 0.60, 0.70, 0.95), (0.30, 0.05, 0.70, 0.40)),
    "near": ((0.10, 0.35, 0.45, 0.65), (0.50, 0.35, 0.85, 0.65)),
    "on": ((0.35, 0.15, 0.65, 0.45), (0.20, 0.45, 0.80, 0.85)),
    "in": ((0.40, 0.40, 0.60, 0.60), (0.20, 0.20, 0.80, 0.80)),
    "in front of": ((0.15, 0.40, 0.60, 0.90), (0.40, 0.20, 0.85, 0.70)),
    "behind": ((0.40, 0.20, 0.85, 0.70), (0.15, 0.40, 0.60, 0.90)),
}


def as_layout(boxes: dict[str, Box]) -> Layout:
    return tuple(sorted((name, tuple(float(v) for v in box)) for name, box in boxes.items()))


def rule_layout(graph: Graph, vocab: Vocabulary) -> Layout | None:
    """The canonical boxes of a one-triple graph whose predicate (or alias) has a rule, else
    None. A graph of several triples has none: one box per object cannot in general satisfy
    every triple's canonical pair, and a layout that contradicts the graph would look right."""
    if len(graph) != 1:
        return None
    t = graph[0]
    pred = vocab.resolve(t.predicate)
    if pred not in RULE_BOXES or t.subject == t.object:
        return None
    sub, obj = RULE_BOXES[pred]
    return as_layout({t.subject: sub, t.object: obj})


def reference_layout(case: Case, graph: Graph, size: tuple[int, int], suite_kind: str) -> Layout | None:
    """The suite's boxes for ``graph`` (the case's g+ or g-), or None where the suite has none.

    The shapes world places any graph correctly, so g+ and g- get the boxes of their own
    reference render. A photo's boxes show g+; a swap negative (B pred A) gets the same two
    boxes exchanged, which makes its relation hold exactly as g+'s held in the photo; any
    other g- (a replaced predicate) has no reference layout.
    """
    ref = case.reference
    if ref is None:
        return None
    if suite_kind == "shapes" and ref.image is None:
        from relbench.shapes.reference import reference_boxes

        w, h = size
        boxes = reference_boxes(graph, case.seed, size)
        return as_layout({n: (b[0] / w, b[1] / h, b[2] / w, b[3] / h) for n, b in boxes.items()})
    if not ref.boxes or ref.size is None or len(case.pos) != 1 or len(graph) != 1:
        return None
    pos, t = case.pos[0], graph[0]
    w, h = ref.size
    if graph == case.pos:
        roles = {pos.subject: pos.subject, pos.object: pos.object}
    elif (t.subject, t.predicate, t.object) == (pos.object, pos.predicate, pos.subject):
        roles = {t.subject: pos.subject, t.object: pos.object}
    else:
        return None
    if any(src not in ref.boxes for src in roles.values()):
        return None
    return as_layout({name: _fraction(ref.boxes[src], w, h) for name, src in roles.items()})


def _fraction(box: Box, w: float, h: float) -> Box:
    x0, y0, x1, y1 = box
    return (_clip(x0 / w), _clip(y0 / h), _clip(x1 / w), _clip(y1 / h))


def _clip(v: float) -> float:
    return min(1.0, max(0.0, float(v)))
