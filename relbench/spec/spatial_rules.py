"""Box rules that judge "A <predicate> B" from two detections, one function per rule set.

Boxes are (x_min, y_min, x_max, y_max) in pixels, y grows downward; A is the subject, B the
object. Every rule answers True / False, or None when the rule set has no rule for the
predicate (not checkable). The published rule sets (geneval, visor, t2i_compbench) are
reproduced from their evaluation code, quirks included, so numbers stay comparable with the
papers; ``relbench`` is our documented default that covers every geometric predicate.
See docs/metrics.md for the definitions in prose.

Pure Python on purpose: no numpy/torch, so the rules are importable anywhere and exact.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional

from relbench.errors import UserError

Box = tuple[float, float, float, float]

RULE_SETS = ("relbench", "geneval", "visor", "t2i_compbench")


# --- geometry -------------------------------------------------------------------------------


def _check_box(box, what: str) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise UserError(f"{what}: a box is (x_min, y_min, x_max, y_max), got {box!r}") from None
    if x1 < x0 or y1 < y0:
        raise UserError(f"{what}: box {box!r} has x_max < x_min or y_max < y_min")
    return x0, y0, x1, y1


def center(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0


def area(b: Box) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def intersection(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def box_gap(a: Box, b: Box) -> float:
    """Euclidean distance between two boxes (0 when they touch or overlap)."""
    gx = max(0.0, b[0] - a[2], a[0] - b[2])
    gy = max(0.0, b[1] - a[3], a[1] - b[3])
    return math.hypot(gx, gy)


# --- GenEval (djghosh13/geneval, evaluation/evaluate_images.py, relative_position) -----------

GENEVAL_POSITION_THRESHOLD = 0.1  # their --options position_threshold default


def geneval_relations(a: Box, b: Box, threshold: float = GENEVAL_POSITION_THRESHOLD) -> set[str]:
    """Positions of A relative to B: center offset shrunk by threshold·(size_a + size_b) per
    axis, normalised by the raw offset's length; a direction holds when its share is > 0.5."""
    (cax, cay), (cbx, cby) = center(a), center(b)
    ox, oy = cax - cbx, cay - cby
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    rx = max(abs(ox) - threshold * (wa + wb), 0.0) * _sign(ox)
    ry = max(abs(oy) - threshold * (ha + hb), 0.0) * _sign(oy)
    if abs(rx) < 1e-3 and abs(ry) < 1e-3:
        return set()
    norm = math.hypot(ox, oy)
    dx, dy = rx / norm, ry / norm
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels


def _sign(v: float) -> float:
    return (v > 0) - (v < 0)


def _geneval(pred: str, a: Box, b: Box) -> Optional[bool]:
    if pred not in ("left of", "right of", "above", "below"):
        return None
    return pred in geneval_relations(a, b)


# --- VISOR (microsoft/VISOR, text2image_realtime_evaluate.ipynb, process_detection) ----------


def _visor(pred: str, a: Box, b: Box) -> Optional[bool]:
    """Centroid comparison, strict, no margin: xdist = cx_A - cx_B, ydist = cy_A - cy_B."""
    (cax, cay), (cbx, cby) = center(a), center(b)
    xd, yd = cax - cbx, cay - cby
    return {"left of": xd < 0, "right of": xd > 0, "above": yd < 0, "below": yd > 0}.get(pred)


# --- T2I-CompBench (UniDet_eval/determine_position_for_eval.py, determine_position) ----------

T2I_IOU_THRESHOLD = 0.1
T2I_DISTANCE_THRESHOLD = 150.0  # absolute pixels; T2I-CompBench images are 512x512
# our canonical predicate -> their locality phrase
T2I_LOCALITY = {
    "left of": "on the left of",
    "right of": "on the right of",
    "above": "on the top of",
    "below": "on the bottom of",
    "near": "near",  # 'next to', 'on side of' and 'near' share one rule; all alias our "near"
}


def t2i_compbench_position_score(pred: str, a: Box, b: Box) -> Optional[float]:
    """T2I-CompBench's graded position score for "A pred B" (box1 = A, box2 = B), or None when
    they have no rule for the predicate. Left/right/top/bottom: 1 when the centre offset points
    the right way along its dominant axis and IoU < 0.1, else 0.1/IoU; near: 1 when |dx| or
    |dy| < 150 px, else 150/max(|dx|, |dy|). Their 'on top of' phrase has no branch (always 0)
    and is not exposed."""
    locality = T2I_LOCALITY.get(_default_vocab().resolve(pred) or pred)
    if locality is None:
        return None
    (c1x, c1y), (c2x, c2y) = center(a), center(b)
    xd, yd = c2x - c1x, c2y - c1y
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    iou = inter / union if union > 0 else 0.0  # their code divides by zero here
    thr, dist = T2I_IOU_THRESHOLD, T2I_DISTANCE_THRESHOLD

    def graded(direction_ok: bool, dominant: bool) -> float:
        if direction_ok and dominant:
            return 1.0 if iou < thr else thr / iou
        return 0.0

    if locality == "near":
        if abs(xd) < dist or abs(yd) < dist:
            return 1.0
        return dist / max(abs(xd), abs(yd))
    if locality == "on the right of":
        return graded(xd < 0, abs(xd) > abs(yd))
    if locality == "on the left of":
        return graded(xd > 0, abs(xd) > abs(yd))
    if locality == "on the bottom of":
        return graded(yd < 0, abs(yd) > abs(xd))
    return graded(yd > 0, abs(yd) > abs(xd))  # on the top of


def t2i_compbench_image_score(position: float, conf_a: float, conf_b: float) -> float:
    """Their per-image score with both objects detected: 0.25·conf1 + 0.25·conf2 + 0.5·position,
    set to 0 below 0.5. (With one or no object detected their score is 0.25·conf < 0.5 → 0.)"""
    score = 0.25 * conf_a + 0.25 * conf_b + 0.5 * position
    return 0.0 if score < 0.5 else score


def _t2i(pred: str, a: Box, b: Box) -> Optional[bool]:
    """Boolean form: the relation holds iff the graded position score is exactly 1 (full
    credit: right direction on the dominant axis with IoU < 0.1; near: within 150 px)."""
    s = t2i_compbench_position_score(pred, a, b)
    return None if s is None else s == 1.0


# --- relbench (our default; every geometric predicate of the shipped vocabulary) -----------

NEAR_FACTOR = 0.25  # near iff gap <= 0.25 * s
FAR_FACTOR = 0.75  # far from iff gap >= 0.75 * s
IN_COVER = 0.9  # in: >= 90% of A lies inside B, and A is smaller than B
SUPPORT_TOL = 0.15  # on/hanging: contact band of 0.15 * h_B beyond B's edge


def _size_scale(a: Box, b: Box) -> float:
    return (max(a[2] - a[0], a[3] - a[1]) + max(b[2] - b[0], b[3] - b[1])) / 2.0


def _on(a: Box, b: Box) -> bool:
    cxa = (a[0] + a[2]) / 2.0
    hb, cyb = b[3] - b[1], (b[1] + b[3]) / 2.0
    return b[0] <= cxa <= b[2] and b[1] - SUPPORT_TOL * hb <= a[3] <= cyb and a[1] < b[1]


def _hanging(a: Box, b: Box) -> bool:
    cxa = (a[0] + a[2]) / 2.0
    hb, cyb = b[3] - b[1], (b[1] + b[3]) / 2.0
    return b[0] <= cxa <= b[2] and cyb <= a[1] <= b[3] + SUPPORT_TOL * hb and a[3] > b[3]


def _contact(a: Box, b: Box) -> bool:
    """Boxes overlap or touch (closed intervals). Occlusion is what shows depth, and the visible
    box of an occluded object often just abuts its occluder: requiring a strictly positive
    intersection would fail correct drawings."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


_RELBENCH: dict[str, Callable[[Box, Box], bool]] = {
    "left of": lambda a, b: "left of" in geneval_relations(a, b),
    "right of": lambda a, b: "right of" in geneval_relations(a, b),
    "above": lambda a, b: "above" in geneval_relations(a, b),
    "below": lambda a, b: "below" in geneval_relations(a, b),
    "near": lambda a, b: box_gap(a, b) <= NEAR_FACTOR * _size_scale(a, b),
    "far from": lambda a, b: box_gap(a, b) >= FAR_FACTOR * _size_scale(a, b),
    "in": lambda a, b: intersection(a, b) >= IN_COVER * area(a) and area(a) < area(b),
    "on": _on,
    "sitting on": _on,
    "standing on": _on,
    "riding": _on,
    "hanging from": _hanging,
    "in front of": lambda a, b: _contact(a, b) and a[3] > b[3],
    "behind": lambda a, b: _contact(a, b) and a[3] < b[3],
}


def _relbench(pred: str, a: Box, b: Box) -> Optional[bool]:
    rule = _RELBENCH.get(pred)
    return None if rule is None else bool(rule(a, b))


_RULES: dict[str, Callable[[str, Box, Box], Optional[bool]]] = {
    "relbench": _relbench,
    "geneval": _geneval,
    "visor": _visor,
    "t2i_compbench": _t2i,
}


def covered(rule_set: str) -> tuple[str, ...]:
    """Canonical predicates a rule set has a rule for."""
    return {
        "relbench": tuple(_RELBENCH),
        "geneval": ("left of", "right of", "above", "below"),
        "visor": ("left of", "right of", "above", "below"),
        "t2i_compbench": tuple(T2I_LOCALITY),
    }[check_rule_set(rule_set)]


def check_rule_set(rule_set: str) -> str:
    if rule_set not in _RULES:
        raise UserError(f"spatial: unknown rule set {rule_set!r} (known: {', '.join(RULE_SETS)})")
    return rule_set


@lru_cache(maxsize=1)
def _default_vocab():
    from relbench.spec.predicates import load_vocabulary

    return load_vocabulary()


def relation_holds(rule_set: str, predicate: str, subject_box, object_box, vocab=None) -> Optional[bool]:
    """Does "subject predicate object" hold for these boxes under ``rule_set``?

    Returns True / False, or None when the predicate is not checkable under that rule set
    (non-geometric predicates such as "eating" are None under every rule set). ``predicate``
    may be any name or alias of the vocabulary (default: the shipped one).
    """
    rule = _RULES[check_rule_set(rule_set)]
    pred = (vocab or _default_vocab()).get(predicate, where="relation_holds")
    if not pred.geometric:
        return None
    a = _check_box(subject_box, "relation_holds: subject box")
    b = _check_box(object_box, "relation_holds: object box")
    return rule(pred.name, a, b)
