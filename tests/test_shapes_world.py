"""The shapes world against known geometry: layouts, rendering and the exact detector."""

import random

import numpy as np
import pytest

from relbench.generators.shapes import ShapesIgnoreRelation, ShapesInverse, ShapesOracle
from relbench.spec.data import Request, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.spec.predicates import load_vocabulary
from relbench.shapes.detect import classify_shape, detect_all, detect_objects
from relbench.shapes.reference import render_reference
from relbench.shapes.suite import DEFAULT_PREDICATES, shapes_items
from relbench.shapes.world import COLOURS, Placed, layout, render

V = load_vocabulary()
SIZE = (256, 256)


def boxes_for(pred, mode, seed, a="red circle", b="blue square"):
    g = (Triple(a, pred, b),)
    objs = {o.name: o.box for o in layout(g, random.Random(seed), SIZE, mode)}
    return objs[a], objs[b]


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize("seed", range(25))
def test_satisfy_layouts_have_the_relation(seed):
    A, B = boxes_for("left of", "satisfy", seed)
    assert A[2] < B[0]  # entirely to the left
    A, B = boxes_for("above", "satisfy", seed)
    assert A[3] < B[1]
    A, B = boxes_for("in", "satisfy", seed)
    assert B[0] <= A[0] and B[1] <= A[1] and A[2] <= B[2] and A[3] <= B[3]
    A, B = boxes_for("on", "satisfy", seed)
    hB = B[3] - B[1]
    assert B[1] - 0.08 * hB - 1e-9 <= A[3] <= B[1] and B[0] <= centre(A)[0] <= B[2]
    A, B = boxes_for("in front of", "satisfy", seed)
    assert A[3] > B[3] and A[0] < B[2] and B[0] < A[2] and A[1] < B[3]  # overlapping, base lower
    A, B = boxes_for("near", "satisfy", seed)
    gap = max(B[0] - A[2], A[0] - B[2], B[1] - A[3], A[1] - B[3])
    assert 0 <= gap <= 0.15 * max(A[2] - A[0], B[2] - B[0])
    for box in (A, B):
        assert 0 <= box[0] and box[2] <= 256 and 0 <= box[1] and box[3] <= 256


@pytest.mark.parametrize("seed", range(25))
def test_violate_layouts_invert_the_relation(seed):
    A, B = boxes_for("left of", "violate", seed)
    assert A[0] > B[2]
    A, B = boxes_for("on", "violate", seed)
    assert A[1] > B[3]  # drawn below instead
    A, B = boxes_for("in front of", "violate", seed)
    assert A[3] < B[3]
    A, B = boxes_for("in", "violate", seed)
    assert A[2] < B[0] or A[0] > B[2] or A[3] < B[1] or A[1] > B[3]  # outside


def test_depth_order_is_occlusion():
    g = (Triple("red square", "in front of", "blue square"),)
    objs = layout(g, random.Random(3), SIZE, "satisfy")
    img = render(objs, SIZE)
    front = next(o for o in objs if o.name == "red square")
    x0, y0, x1, y1 = (int(v) for v in front.box)
    # the front object is fully visible: its centre pixel is red even where the boxes overlap
    assert tuple(img[(y0 + y1) // 2, (x0 + x1) // 2]) == COLOURS["red"]
    assert [o.name for o in objs] == ["blue square", "red square"]  # drawn back to front


def test_detector_returns_exact_pixel_boxes():
    objs = [Placed("red square", "red", "square", 10, 20, 30), Placed("blue circle", "blue", "circle", 100, 50, 41)]
    img = render(objs, (160, 120))
    assert img.shape == (120, 160, 3)
    found = detect_objects(img, ["red square", "blue circle", "green triangle", "not an object"])
    assert found["red square"] == ((10.0, 20.0, 40.0, 50.0), 1.0)
    assert found["blue circle"] == ((100.0, 50.0, 141.0, 91.0), 1.0)
    assert found["green triangle"] is None and found["not an object"] is None
    assert sorted(detect_all(img)) == [("blue circle", (100.0, 50.0, 141.0, 91.0)), ("red square", (10.0, 20.0, 40.0, 50.0))]


def test_shape_classification_by_fill_ratio():
    for kind in ("square", "circle", "triangle"):
        img = render([Placed(f"red {kind}", "red", kind, 5, 5, 60)], (80, 80))
        assert classify_shape(np.all(img == COLOURS["red"], axis=-1)) == kind


def test_reference_boxes_match_the_detector():
    g = (Triple("yellow triangle", "in", "red circle"),)
    img, boxes = render_reference(g, 0, SIZE)
    found = detect_objects(img, list(boxes))
    for name, box in boxes.items():
        det = found[name][0]
        assert max(abs(a - b) for a, b in zip(det, box)) <= 1.0, (name, det, box)


def test_generators_are_deterministic_and_batch_independent():
    ctx = Context(vocab=V)
    reqs = [Request("", (Triple("red circle", p, "blue square"),), s, (64, 64)) for p in ("above", "in", "behind") for s in (0, 1)]
    for cls in (ShapesOracle, ShapesIgnoreRelation, ShapesInverse):
        gen = cls(cls.Args(), ctx)
        batch = gen.generate(reqs)
        alone = [gen.generate([r])[0] for r in reqs]
        assert all(np.array_equal(a, b) for a, b in zip(batch, alone))
        again = gen.generate(reqs)
        assert all(np.array_equal(a, b) for a, b in zip(batch, again))
        assert not np.array_equal(batch[0], batch[1])  # seeds differ -> images differ
        assert batch[0].dtype == np.uint8 and batch[0].shape == (64, 64, 3)


def test_multi_triple_chain_and_non_tree_graph():
    g = (Triple("red circle", "on", "blue square"), Triple("blue square", "left of", "green triangle"))
    objs = {o.name: o.box for o in layout(g, random.Random(0), SIZE, "satisfy")}
    assert objs["red circle"][3] <= objs["blue square"][1]
    assert objs["blue square"][2] < objs["green triangle"][0]
    cyc = g + (Triple("green triangle", "above", "red circle"),)
    with pytest.raises(UserError, match="tree-shaped"):
        layout(cyc, random.Random(0), SIZE, "satisfy")


def test_suite_is_deterministic_and_large_enough():
    items = shapes_items(10, V)
    assert len(items) == 90 and len({i.id for i in items}) == 90
    assert len(DEFAULT_PREDICATES) >= 8
    assert [i.graph for i in items] == [i.graph for i in shapes_items(10, V)]
    assert [i.graph for i in shapes_items(3, V)] == [i.graph for i in items if int(i.id[-3:]) < 3]
    for it in items:
        t = it.graph[0]
        assert t.subject.split()[0] != t.object.split()[0]  # distinct colours: exact detection


def test_unknown_object_is_a_clear_error():
    with pytest.raises(UserError, match="not a shapes-world object"):
        layout((Triple("dog", "on", "horse"),), random.Random(0), SIZE, "satisfy")
    with pytest.raises(UserError, match="cannot draw"):
        layout((Triple("red circle", "wearing", "blue square"),), random.Random(0), SIZE, "satisfy")
