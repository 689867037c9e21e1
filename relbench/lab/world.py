"""The lab's slice of the shapes world: few colours, four directional predicates, 32 px.

Why four well-separated colours: generated pixels are never exactly a palette colour, so the
detector snaps each pixel to the nearest lab colour (relbench.shapes.detect.snap_to_palette);
colours far apart keep that snapping unambiguous. Why left/right/above/below: each has a
directional swap, and their geometry is judged by relbench's rules without depth cues that a
32 px image cannot show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relbench.data import Graph, Triple

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
PREDICATES = ("left of", "right of", "above", "below")
SIZE = 32
#: every word a lab prompt or graph name can hold (the word-level tokenizers' vocabulary)
WORDS = ("a", "an", "photo", "of", "and", "left", "right", "above", "below") + COLOURS + SHAPES


@dataclass(frozen=True)
class Scene:
    """One training image: a triple drawn right at ``SIZE`` px with its layout seed."""

    graph: Graph
    seed: int


def random_triple(rng: random.Random) -> Triple:
    c1, c2 = rng.sample(COLOURS, 2)
    return Triple(f"{c1} {rng.choice(SHAPES)}", rng.choice(PREDICATES), f"{c2} {rng.choice(SHAPES)}")


def scenes(n: int, seed: int, salt: str) -> list[Scene]:
    """``n`` scenes that depend only on (seed, salt, index): growing n keeps earlier ones."""
    out = []
    for i in range(n):
        rng = random.Random(f"lab:{salt}:{seed}:{i}")
        out.append(Scene((random_triple(rng),), rng.randrange(1 << 30)))
    return out


def render_scene(scene: Scene):
    """uint8 (SIZE, SIZE, 3) image of the scene's graph drawn right."""
    from relbench.shapes.world import layout, render, scene_rng

    objs = layout(scene.graph, scene_rng(scene.seed, scene.graph, "lab"), (SIZE, SIZE), "satisfy")
    return render(objs, (SIZE, SIZE))
