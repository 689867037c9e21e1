"""Objects, layouts and rendering of the shapes world.

Layouts are built so that relbench's default spatial rules (metrics/spatial.py, rule set
``relbench``) hold with a margin when a relation is drawn right, and fail when drawn wrong.
Geometry is in pixels, boxes are (x_min, y_min, x_max, y_max) with x_max/y_max exclusive,
y grows downward. Depth comes from occlusion: an object in front is drawn later, lower
(its base nearer the viewer) and a little larger.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from relbench.spec.data import Box, Graph
from relbench.errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (225, 195, 20),
    "purple": (140, 60, 180),
    "orange": (240, 130, 20),
    "cyan": (20, 180, 200),
    "pink": (235, 110, 170),
}
SHAPE_KINDS = ("circle", "square", "triangle")
BACKGROUND = (235, 235, 235)

#: predicates the world can draw (both right and wrong)
DRAWABLE = (
    "above", "below", "left of", "right of", "near", "far from", "in", "on", "in front of",
    "behind", "hanging from", "sitting on", "standing on", "riding",
)
#: the layout that makes a predicate false, used by the inverse generator
VIOLATION = {
    "above": "below", "below": "above", "left of": "right of", "right of": "left of",
    "near": "far from", "far from": "near", "in": "far from", "on": "below",
    "sitting on": "below", "standing on": "below", "riding": "below", "hanging from": "above",
    "in front of": "behind", "behind": "in front of",
}
_ON_LIKE = {"on", "sitting on", "standing on", "riding"}


def parse_object(name: str) -> tuple[str, str]:
    """'red circle' -> ('red', 'circle'); anything else is not an object of this world."""
    parts = name.strip().lower().split()
    if len(parts) == 2 and parts[0] in COLOURS and parts[1] in SHAPE_KINDS:
        return parts[0], parts[1]
    raise UserError(
        f"{name!r} is not a shapes-world object (use '<colour> <shape>': colours "
        f"{', '.join(COLOURS)}; shapes {', '.join(SHAPE_KINDS)})"
    )


@dataclass
class Placed:
    name: str
    colour: str
    kind: str
    x: float  # top-left corner
    y: float
    size: float
    depth: float = 0.0

    @property
    def box(self) -> Box:
        return (self.x, self.y, self.x + self.size, self.y + self.size)


def _sizes(pred: str, rng: random.Random, scale: float, sa: float | None, sb: float | None):
    """Sizes of subject and object for a relation; either may already be fixed."""
    lo, hi = 36 * scale, 64 * scale
    if pred == "in":
        if sb is None:
            sb = (sa / rng.uniform(0.25, 0.4)) if sa is not None else rng.uniform(110, 150) * scale
        if sa is None:
            sa = sb * rng.uniform(0.25, 0.4)
    elif pred == "in front of":
        if sb is None:
            sb = sa / rng.uniform(1.0, 1.3) if sa is not None else rng.uniform(lo, hi)
        if sa is None:
            sa = sb * rng.uniform(1.0, 1.3)
    elif pred == "behind":
        if sb is None:
            sb = sa * rng.uniform(1.0, 1.3) if sa is not None else rng.uniform(lo, hi)
        if sa is None:
            sa = sb / rng.uniform(1.0, 1.3)
    else:
        sa = sa if sa is not None else rng.uniform(lo, hi)
        sb = sb if sb is not None else rng.uniform(lo, hi)
    return sa, sb


def _inner_box(kind: str, sb: float) -> tuple[float, float, float, float]:
    """Region (relative to the container's top-left) where a box lies fully inside the shape."""
    if kind == "square":
        return (0.08 * sb, 0.08 * sb, 0.92 * sb, 0.92 * sb)
    if kind == "circle":
        half = sb / (2 * math.sqrt(2)) * 0.95
        c = sb / 2
        return (c - half, c - half, c + half, c + half)
    # upward triangle: apex top-centre, base along the bottom
    return (0.28 * sb, 0.5 * sb, 0.72 * sb, 0.96 * sb)


def _offset(pred: str, rng: random.Random, sa: float, sb: float, kind_b: str) -> tuple[float, float, float]:
    """(dx, dy, ddepth): top-left of A minus top-left of B, and A's depth minus B's."""
    s = (sa + sb) / 2
    if pred in ("left of", "right of", "above", "below"):
        gap = rng.uniform(0.1, 0.6) * s
        along = (sa + sb) / 2 + gap
        across = rng.uniform(-0.3, 0.3) * s
        dcx, dcy = {
            "left of": (-along, across), "right of": (along, across),
            "above": (across, -along), "below": (across, along),
        }[pred]
        return dcx + (sb - sa) / 2, dcy + (sb - sa) / 2, 0.5
    if pred in ("near", "far from"):
        gap = rng.uniform(0.02, 0.15) * s if pred == "near" else rng.uniform(1.0, 1.6) * s
        side = rng.choice(("left", "right", "top", "bottom"))
        across = rng.uniform(-0.35, 0.35) * min(sa, sb)
        c = (sb - sa) / 2 + across  # centred across the touching side, with jitter
        return {
            "left": (-sa - gap, c), "right": (sb + gap, c),
            "top": (c, -sa - gap), "bottom": (c, sb + gap),
        }[side] + (0.5,)
    if pred == "in":
        x0, y0, x1, y1 = _inner_box(kind_b, sb)
        return rng.uniform(x0, x1 - sa), rng.uniform(y0, y1 - sa), 1.0
    if pred in _ON_LIKE:
        cx = sb / 2 + rng.uniform(-0.25, 0.25) * sb
        return cx - sa / 2, -sa - rng.uniform(0.0, 0.08) * sb, 0.5
    if pred == "hanging from":
        cx = sb / 2 + rng.uniform(-0.25, 0.25) * sb
        return cx - sa / 2, sb + rng.uniform(0.0, 0.08) * sb, 0.5
    if pred in ("in front of", "behind"):
        sign = 1 if pred == "in front of" else -1
        base = sign * rng.uniform(0.15, 0.35) * s  # A's bottom minus B's bottom
        dcx = rng.choice((-1, 1)) * rng.uniform(0.3, 0.6) * (sa + sb) / 2
        dx = dcx + (sb - sa) / 2
        dy = (sb + base) - sa
        return dx, dy, float(sign)
    raise UserError(f"the shapes world cannot draw the predicate {pred!r} (it draws: {', '.join(DRAWABLE)})")


def layout(graph: Graph, rng: random.Random, size: tuple[int, int], mode: str, object_scale: float = 1.0) -> list[Placed]:
    """Place every object of a graph. mode: 'satisfy' (right), 'violate' (wrong), 'random'.

    Graphs must be trees over their objects (each triple introduces at most one new object),
    which covers every single-triple case and chains such as A on B, B left of C.
    """
    width, height = size
    scale = min(width, height) / 256 * object_scale
    for _ in range(200):
        placed: dict[str, Placed] = {}
        ok = True
        for t in graph:
            ca, ka = parse_object(t.subject)
            cb, kb = parse_object(t.object)
            pred = t.predicate
            if mode == "violate":
                pred = VIOLATION.get(pred, pred)
            if pred not in DRAWABLE:
                raise UserError(f"the shapes world cannot draw the predicate {t.predicate!r} (it draws: {', '.join(DRAWABLE)})")
            a, b = placed.get(t.subject), placed.get(t.object)
            if a is not None and b is not None:
                if len(graph) == 1 or mode == "random":
                    continue
                raise UserError("the shapes world draws tree-shaped graphs only (a triple relates two already placed objects)")
            sa, sb = _sizes(pred, rng, scale, a.size if a else None, b.size if b else None)
            if mode == "random":
                for name, colour, kind, s, existing in ((t.subject, ca, ka, sa, a), (t.object, cb, kb, sb, b)):
                    if existing is None:
                        placed[name] = Placed(name, colour, kind, rng.uniform(0, width - s), rng.uniform(0, height - s), s, rng.random())
                continue
            dx, dy, dd = _offset(pred, rng, sa, sb, kb)
            if b is None and a is None:
                b = placed[t.object] = Placed(t.object, cb, kb, 0.0, 0.0, sb, 0.0)
            if b is not None and a is None:
                placed[t.subject] = Placed(t.subject, ca, ka, b.x + dx, b.y + dy, sa, b.depth + dd)
            elif a is not None:
                placed[t.object] = Placed(t.object, cb, kb, a.x - dx, a.y - dy, sb, a.depth - dd)
        objs = list(placed.values())
        if mode != "random":
            ok = _fit(objs, rng, width, height)
        if ok:
            return sorted(objs, key=lambda o: o.depth)
    raise UserError(f"cannot lay out graph {[t.text() for t in graph]} in {width}x{height}")


def _fit(objs: list[Placed], rng: random.Random, width: int, height: int) -> bool:
    """Translate the group to a random position inside the canvas (2 px margin)."""
    x0 = min(o.x for o in objs)
    y0 = min(o.y for o in objs)
    x1 = max(o.x + o.size for o in objs)
    y1 = max(o.y + o.size for o in objs)
    m = 2.0
    if x1 - x0 > width - 2 * m or y1 - y0 > height - 2 * m:
        return False
    tx = rng.uniform(m, width - m - (x1 - x0)) - x0
    ty = rng.uniform(m, height - m - (y1 - y0)) - y0
    for o in objs:
        o.x += tx
        o.y += ty
    return True


def pixel_box(o: Placed) -> tuple[int, int, int, int]:
    """The integer pixel extent the renderer fills (x1/y1 exclusive)."""
    x0, y0 = int(round(o.x)), int(round(o.y))
    s = max(int(round(o.size)), 3)
    return x0, y0, x0 + s, y0 + s


def render(objs: list[Placed], size: tuple[int, int]):
    """Aliased drawing in flat colours, back to front, so colours stay exact for the detector.

    Returns a uint8 RGB array (H, W, 3).
    """
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    for o in draw_order(objs):
        draw_shape(draw, o, COLOURS[o.colour])
    return np.asarray(img, dtype=np.uint8)


def draw_order(objs: list[Placed]) -> list[Placed]:
    """Back to front: what is drawn later covers what is drawn earlier (the world's occlusion)."""
    return sorted(objs, key=lambda o: o.depth)


def draw_shape(draw, o: Placed, fill) -> None:
    """Fill the pixels of one object (a PIL ImageDraw), exactly as the renderer does."""
    x0, y0, x1, y1 = pixel_box(o)
    if o.kind == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif o.kind == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    else:
        draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1 - 1) / 2, y0)], fill=fill)


def scene_rng(seed: int, graph: Graph, salt: str) -> random.Random:
    """Layout randomness depends on the request's seed and graph, never on batch position."""
    text = ";".join(t.text() for t in graph)
    return random.Random(f"shapes:{salt}:{seed}:{text}")
