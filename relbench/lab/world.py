"""The lab's slices of the shapes world: few colours, directional predicates, 32 px.

Why four well-separated colours: generated pixels are never exactly a palette colour, so the
detector snaps each pixel to the nearest lab colour (relbench.shapes.detect.snap_to_palette);
colours far apart keep that snapping unambiguous. Why left/right/above/below: each has a
directional swap, and their geometry is judged by relbench's rules without depth cues that a
32 px image cannot show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relbench.spec.data import Graph, Triple
from relbench.errors import UserError

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
PREDICATES = ("left of", "right of", "above", "below")
SIZE = 32
#: every word a lab prompt or graph name can hold (the word-level tokenizers' vocabulary, the
#: same for every world so that a smoke base and a lab base tokenize alike)
WORDS = ("a", "an", "photo", "of", "and", "left", "right", "above", "below") + COLOURS + SHAPES + ("to", "the")


@dataclass(frozen=True)
class World:
    """Which objects and predicates a lab base and its suites use.

    ``lab`` is the experiment's world. ``smoke`` is the test suite's: one shape, two colours,
    left/right only, so every scene holds a red and a blue square and a base learns to draw
    both within a minute; which one goes left is exactly what the graph pathway must learn
    in neutral mode, the thing the smoke test checks.
    """

    name: str
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    predicates: tuple[str, ...]
    held_out: float  # share of the world's triples kept out of arm training (test and val split it)
    object_scale: float = 1.0  # object sizes relative to the shapes world's (the smoke world's are twice as large)


WORLDS = {
    # objects twice the shapes world's size (9-16 px of 32): at the usual 4.5-8 px an object
    # covers one or two of the transformer's 4x4 px tokens, and a base pretrained for 1200 steps
    # drew both prompted objects in 0.18 of images (docs/lab-notebook.md, round 2)
    # a third (144 triples): 96 for test and 48 for val, none shared (relbench.lab.suites)
    "lab": World("lab", COLOURS, SHAPES, PREDICATES, held_out=1 / 3, object_scale=2.0),
    # 4 triples: holding one out would leave val/test one triple; the smoke checks learning, not
    # generalisation, so its val/test use every triple with layouts of their own
    # squares twice the usual size (9-16 px): the reduced base then draws both within its short
    # pretraining (both found in 0.96 of 48 images after 400 steps; 0.21-0.48 at the usual size)
    "smoke": World("smoke", ("red", "blue"), ("square",), ("left of", "right of"), held_out=0.0, object_scale=2.0),
}


def world(name: str) -> World:
    if name not in WORLDS:
        raise UserError(f"lab: unknown world {name!r} (known: {', '.join(WORLDS)})")
    return WORLDS[name]


def world_vocabulary(w: World) -> list[dict]:
    """Benchmark ``predicates:`` entries that make the vocabulary the world's: every geometric
    predicate the world does not draw is marked non-geometric, so the spatial judge's confusion
    rows (and hard negatives read from them) hold only the world's relations. Why: several box
    rules can hold at once, and on the lab world's own layouts "near" holds in 0.43-0.51 of each
    direction's scenes ("on" and its kin in 0.19 of "above"'s): as a column it would top every
    row's confusions, and a hard negative "red circle near blue square" is true of the image and
    a word the lab's tokenizers do not have."""
    from relbench.spec.predicates import default_entries

    return [{**e, "geometric": False} for e in default_entries() if e.get("geometric") and e["name"] not in w.predicates]


@dataclass(frozen=True)
class Scene:
    """One training image: a triple drawn right at ``SIZE`` px with its layout seed."""

    graph: Graph
    seed: int


def triples(w: World) -> list[Triple]:
    """Every triple of the world (two objects of different colours and one of its predicates)."""
    return [Triple(f"{c1} {s1}", p, f"{c2} {s2}") for c1 in w.colours for s1 in w.shapes for p in w.predicates
            for c2 in w.colours if c2 != c1 for s2 in w.shapes]


def random_triple(rng: random.Random, w: World = WORLDS["lab"]) -> Triple:
    c1, c2 = rng.sample(w.colours, 2)
    return Triple(f"{c1} {rng.choice(w.shapes)}", rng.choice(w.predicates), f"{c2} {rng.choice(w.shapes)}")


def scenes(n: int, seed: int, salt: str, w: World = WORLDS["lab"]) -> list[Scene]:
    """``n`` scenes that depend only on (seed, salt, index): growing n keeps earlier ones."""
    out = []
    for i in range(n):
        rng = random.Random(f"lab:{salt}:{seed}:{i}")
        out.append(Scene((random_triple(rng, w),), rng.randrange(1 << 30)))
    return out


def place_scene(scene: Scene, w: World):
    """The scene's objects laid out right at ``SIZE`` px, sized by the world's object scale."""
    from relbench.shapes.world import layout, scene_rng

    return layout(scene.graph, scene_rng(scene.seed, scene.graph, "lab"), (SIZE, SIZE), "satisfy", w.object_scale)


def render_scene(scene: Scene, w: World):
    """uint8 (SIZE, SIZE, 3) image of the scene's graph drawn right."""
    from relbench.shapes.world import render

    return render(place_scene(scene, w), (SIZE, SIZE))


def layout_chance(w: World, per_pair: int = 2) -> float:
    """Relation accuracy of a generator that has learned the world's layouts but ignores the
    relation: for every triple of the world, the objects laid out for each of the world's
    predicates in turn (``per_pair`` layouts each), judged for the triple's own predicate by
    relbench's rules. Why not the detector's chance model (random placements over the canvas):
    a model trained on this world draws its objects side by side, never scattered, so in the
    smoke world (left/right only) it is right half the time, where random placements give 0.28
    and would make a relation-blind base look better than chance."""
    from relbench.shapes.world import pixel_box
    from relbench.spec.spatial_rules import relation_holds

    hits = total = 0
    for drawn in triples(w):
        a, b = drawn.subject, drawn.object
        for k in range(per_pair):
            objs = {o.name: pixel_box(o) for o in place_scene(Scene((drawn,), seed=k), w)}
            for asked in w.predicates:
                hits += bool(relation_holds("relbench", asked, objs[a], objs[b]))
                total += 1
    return hits / total
