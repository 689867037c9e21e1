"""Reference images of the shapes world: a correct drawing of any graph plus its true boxes."""

from __future__ import annotations

from relbench.spec.data import Box, Graph
from relbench.shapes.world import layout, pixel_box, render, scene_rng

VERSION = "1"


def render_reference(graph: Graph, seed: int, size: tuple[int, int]):
    """(image, {object name: true box}) drawn with its own random stream, independent of the oracle's."""
    objs = layout(graph, scene_rng(seed, graph, "reference"), size, "satisfy")
    boxes: dict[str, Box] = {o.name: tuple(float(v) for v in pixel_box(o)) for o in objs}
    return render(objs, size), boxes
