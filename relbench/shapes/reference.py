"""Reference images of the shapes world: a correct drawing of any graph plus its true boxes."""

from __future__ import annotations

from relbench.spec.data import Box, Graph
from relbench.shapes.world import layout, pixel_box, render, scene_rng

VERSION = "1"


def render_reference(graph: Graph, seed: int, size: tuple[int, int]):
    """(image, {object name: true box}) drawn with its own random stream, independent of the oracle's."""
    objs = _placed(graph, seed, size)
    return render(objs, size), _boxes(objs)


def reference_boxes(graph: Graph, seed: int, size: tuple[int, int]) -> dict[str, Box]:
    """The boxes of ``render_reference`` without drawing it (a layout for layout-conditioned generators)."""
    return _boxes(_placed(graph, seed, size))


def _placed(graph: Graph, seed: int, size: tuple[int, int]):
    return layout(graph, scene_rng(seed, graph, "reference"), size, "satisfy")


def _boxes(objs) -> dict[str, Box]:
    return {o.name: tuple(float(v) for v in pixel_box(o)) for o in objs}
