"""The depth judge of "in front of" / "behind": the rules on planted nearness maps whose answer is
known, the shapes world (whose occlusion order is exact) through the spatial metric, and tiny
random DPT / Depth Anything models read from the Hugging Face cache layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from relbench.errors import UserError
from relbench.metrics.spatial import Spatial
from relbench.models.depth import DepthModel, register_depth
from relbench.plugin.context import Context
from relbench.spec.data import Case, Triple
from relbench.spec.depth_rules import (
    box_pixels,
    depth_relation_holds,
    region_median,
    t2i_compbench_3d_image_score,
    t2i_compbench_3d_map,
    t2i_compbench_3d_mean,
    t2i_compbench_3d_position_score,
)
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())
PLANTED: dict[bytes, np.ndarray] = {}  # image bytes -> nearness map


@register_depth("planted")
class PlantedDepth(DepthModel):
    """Test-only: the nearness map planted for each image."""

    def nearness_many(self, images):
        return [PLANTED[im.tobytes()] for im in images]


# --- the rules on planted maps -----------------------------------------------------------------


def test_boxes_cover_the_pixels_whose_centres_they_hold():
    # columns 2..5 have centres 2.5 .. 5.5 inside [2.4, 5.6]; rows 0..2 inside [0, 3]
    assert box_pixels((2.4, 0, 5.6, 3), (10, 10)) == (slice(0, 3), slice(2, 6))
    assert box_pixels((4.1, 4.1, 4.3, 4.3), (10, 10)) == (slice(4, 5), slice(4, 5))  # thinner than a pixel
    assert box_pixels((-5, 8, 3, 20), (10, 10)) == (slice(8, 10), slice(0, 3))  # clipped to the map


def test_rows_are_y_on_a_wide_map_where_the_transposed_crop_reads_nothing():
    """30 rows x 60 columns: A (x 40-56, y 4-20) nearness 7, B (x 30-50, y 10-26) nearness 1,
    A drawn over B. relbench: A's median 7 > B's 1, so A is in front. T2I-CompBench++ crops rows
    40:56 of a 30-row map: empty, NaN, so its score is 0 and "in front of" fails."""
    near = np.zeros((30, 60), np.float32)
    near[10:26, 30:50] = 1.0
    near[4:20, 40:56] = 7.0
    a, b = (40, 4, 56, 20), (30, 10, 50, 26)
    assert region_median(near, a) == 7.0 and region_median(near, b) == 1.0  # B's box: 96 of 320 px are A's
    assert depth_relation_holds("depth", "in front of", near, a, b) is True
    assert depth_relation_holds("depth", "behind", near, a, b) is False
    assert np.isnan(t2i_compbench_3d_mean(t2i_compbench_3d_map(near), a))
    assert depth_relation_holds("t2i_compbench_3d", "in front of", near, a, b) is False


def _transposed_trap():
    """64 x 64: A (x 0-20, y 40-60) nearness 2 and B (x 4-24, y 42-62) nearness 5 drawn over it,
    so B is in front; a third object C (rows 0-20, columns 40-60, nearness 8) sits exactly where
    A's box lands when transposed."""
    near = np.zeros((64, 64), np.float32)
    near[40:60, 0:20] = 2.0
    near[42:62, 4:24] = 5.0
    near[0:20, 40:60] = 8.0
    return near, (0, 40, 20, 60), (4, 42, 24, 62)


def test_the_transposed_crop_gives_the_wrong_answer_and_ours_the_right_one():
    near, a, b = _transposed_trap()
    theirs = t2i_compbench_3d_map(near)  # 8 -> 1.0 after their min-max normalisation
    # A's transposed crop is all C: 1.0; B's holds C in rows 4-19 x columns 42-59, 288 of 400 px
    assert t2i_compbench_3d_mean(theirs, a) == pytest.approx(1.0)
    assert t2i_compbench_3d_mean(theirs, b) == pytest.approx(0.72)
    # IoU = 288 / (400 + 400 - 288) = 0.5625 > 0.5 and A "nearer": full credit for a wrong relation
    assert t2i_compbench_3d_position_score("in front of", a, b, 1.0, 0.72) == 1.0
    assert depth_relation_holds("t2i_compbench_3d", "in front of", near, a, b) is True
    assert depth_relation_holds("t2i_compbench_3d", "behind", near, a, b) is False
    # ours reads rows by y: A is not in front of B (B covers 288 of A's 400 box pixels: both medians 5)
    assert region_median(near, a) == 5.0 and region_median(near, b) == 5.0
    assert depth_relation_holds("depth", "in front of", near, a, b) is False
    # with A's visible mask its median is its own 2: A behind B, as drawn
    mask_a = np.zeros_like(near, dtype=bool)
    mask_a[40:60, 0:20] = True
    mask_a[42:62, 4:24] = False
    assert region_median(near, mask_a) == 2.0
    assert depth_relation_holds("depth", "behind", near, mask_a, b) is True
    # their rule on the map they meant (the transpose undone) orders A and B rightly
    assert t2i_compbench_3d_mean(theirs.T, a) < t2i_compbench_3d_mean(theirs.T, b)


def test_t2i_compbench_3d_quantises_as_their_png_and_grades_by_overlap():
    from PIL import Image

    rng = np.random.RandomState(0)
    near = rng.uniform(-3, 9, (17, 23)).astype(np.float32)
    norm = (near - near.min()) / (near.max() - near.min())
    png = np.asarray(Image.fromarray(255 * norm).convert("L"), dtype=np.float32) / 255.0  # their saving path
    assert np.array_equal(t2i_compbench_3d_map(near), png)
    a, b = (0, 0, 10, 10), (5, 0, 15, 10)  # IoU 50 / 150 = 1/3
    assert t2i_compbench_3d_position_score("in front of", a, b, 0.6, 0.4) == pytest.approx((1 / 3) / 0.5)
    assert t2i_compbench_3d_position_score("in front of", a, b, 0.4, 0.6) == 0.0
    assert t2i_compbench_3d_position_score("behind", a, b, 0.4, 0.6) == pytest.approx(2 / 3)
    assert t2i_compbench_3d_position_score("hidden", a, b, 0.4, 0.6) == pytest.approx(2 / 3)
    assert t2i_compbench_3d_position_score("in front of", a, (20, 0, 30, 10), 0.9, 0.1) == 0.0  # no overlap
    assert t2i_compbench_3d_position_score("in front of", a, (0, 0, 10, 10), 0.9, float("nan")) == 0.0
    # their image score has no cut below 0.5, and keeps 0.25·conf of an object found alone
    assert t2i_compbench_3d_image_score(0.0, 0.8, 0.6) == pytest.approx(0.35)
    assert t2i_compbench_3d_image_score(0.0, None, 0.6) == pytest.approx(0.15)


# --- through the metric: planted maps, then the shapes world's exact order ----------------------

SCENES = {  # image id (pixel [0, 0, 0]) -> name -> box, score
    1: {"dog": ((0, 40, 20, 60), 0.9), "cat": ((4, 42, 24, 62), 0.8)},
}


def _trap_image():
    img = np.zeros((64, 64, 3), np.uint8)
    img[0, 0, 0] = 1
    PLANTED[img.tobytes()] = _transposed_trap()[0]
    return img


def test_metric_columns_and_aggregates_on_the_transposed_trap():
    from relbench.models.detectors import Detector, register_detector

    @register_detector("stub_depth_boxes")
    class Stub(Detector):
        def detect_many(self, items):
            return [{n: SCENES[int(im[0, 0, 0])].get(n) for n in names} for im, names in items]

        def masks(self, image, names):  # visible pixels: the dog's box less the cat drawn over it
            near = _transposed_trap()[0]
            return {"dog": near == 2.0, "cat": near == 5.0}

    img = _trap_image()
    case = Case(id="c", item_id="t", pos=(Triple("cat", "in front of", "dog"),),
                neg=(Triple("dog", "in front of", "cat"),), negative_kind="swap", seed=0)
    m = Spatial(Spatial.Args(detector="stub_depth_boxes", rule_set=["relbench", "geneval"], depth="planted",
                             depth_rule_set=["depth", "t2i_compbench_3d"]), CTX)
    from relbench.testing.samples import make_sample

    row = m.score([make_sample(case, "k", "k", {"k": img}.__getitem__)])[0]
    assert set(row) == set(m.columns())
    # the cat (B of the trap) is in front: over the detector's masks, medians 5 (cat) > 2 (dog)
    assert (row["depth_pos_correct"], row["depth_neg_correct"], row["depth_pair_correct"]) == (1.0, 0.0, 0.0)
    assert json.loads(row["pos_nearness"]) == {"cat": 5.0, "dog": 2.0}
    # T2I-CompBench++'s transposed crop sees the dog nearer: g- full credit, g+ none
    assert (row["t2i_compbench_3d_pos_correct"], row["t2i_compbench_3d_neg_correct"]) == (0.0, 1.0)
    assert row["t2i_compbench_3d_pos_score"] == pytest.approx(0.25 * 0.8 + 0.25 * 0.9)
    assert row["t2i_compbench_3d_neg_score"] == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    assert row["geneval_pos_checkable"] == 0.0  # GenEval has no depth rule: unjudged as without depth
    assert row["depth_pos_chance"] is None
    keys = {a.key for a in m.aggregates()}
    assert {"spatial_depth_pos_acc", "spatial_depth_pair_acc", "spatial_t2i_compbench_3d_pos_score",
            "spatial_depth_neg_not_checkable", "spatial_relbench_pair_acc"} <= keys
    assert [a.key for a in m.aggregates() if a.headline] == ["spatial_relbench_pair_acc", "spatial_geneval_pair_acc"]


def test_without_depth_nothing_changes():
    plain = Spatial(Spatial.Args(detector="shapes"), CTX)
    assert not any("depth" in c or "nearness" in c for c in plain.columns())
    assert "depth" not in plain.weights_identity()


def _shapes_pair(subject, pred, obj, seed):
    """A layout drawing "subject pred obj" right: the graph and the image; its exact nearness is planted."""
    from relbench.shapes.depth import oracle_nearness
    from relbench.shapes.world import layout, render, scene_rng

    graph = (Triple(subject, pred, obj),)
    objs = layout(graph, scene_rng(seed, graph, "test"), (64, 64), "satisfy")
    img = render(objs, (64, 64))
    PLANTED[img.tobytes()] = oracle_nearness(objs, (64, 64))
    return graph, img


def test_the_shapes_oracle_ranks_the_draw_order():
    from relbench.shapes.depth import oracle_nearness
    from relbench.shapes.world import Placed, render

    back, front = Placed("red square", "red", "square", 4, 4, 20), Placed("blue square", "blue", "square", 14, 14, 20)
    front.depth = 1.0
    near = oracle_nearness([front, back], (40, 30))
    img = render([front, back], (40, 30))
    assert near.shape == (30, 40)
    assert near[5, 5] == 1.0 and near[20, 20] == 2.0 and near[29, 39] == 0.0
    assert (img[20, 20] == (40, 80, 220)).all()  # blue drawn last, as the oracle says


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_shapes_world_in_both_prompt_modes(mode):
    """img_pos draws g+ (red in front of / behind blue), img_neg its swap; the shapes detector's
    colour masks and the oracle's nearness give the world's exact order on every seed and shape."""
    from relbench.testing.samples import make_sample

    m = Spatial(Spatial.Args(detector="shapes", depth="planted", depth_rule_set="depth"), CTX)
    samples, ties = [], 0
    for seed in range(6):
        for pred, inverse in (("in front of", "behind"), ("behind", "in front of")):
            for kinds in (("square", "circle"), ("triangle", "square"), ("circle", "triangle")):
                red, blue = f"red {kinds[0]}", f"blue {kinds[1]}"
                pos, ipos = _shapes_pair(red, pred, blue, seed)
                neg, ineg = _shapes_pair(blue, pred, red, seed + 100)  # the swap, drawn right
                case = Case(id=f"c{seed}{pred}{kinds}", item_id="t", pos=pos, neg=neg, negative_kind="swap", seed=seed)
                kp, kn = f"p{case.id}", f"n{case.id}"  # an image key names one image
                imgs = {kp: ipos, kn: ineg}
                samples += [make_sample(case, kp, kn, imgs.__getitem__, mode),
                            make_sample(case, kn, kp, imgs.__getitem__, mode)]
                near = PLANTED[ipos.tobytes()]
                boxes = m.detector.detect(ipos, [pos[0].subject, pos[0].object])
                a, b = (boxes[n][0] for n in (pos[0].subject, pos[0].object))
                ties += region_median(near, a) == region_median(near, b)
                assert depth_relation_holds("depth", inverse, near, a, b) is False
    rows = m.score(samples)
    assert [r["depth_pos_checkable"] for r in rows] == [1.0] * len(rows)
    assert [(r["depth_pos_correct"], r["depth_neg_correct"]) for r in rows[0::2]] == [(1.0, 1.0)] * (len(rows) // 2)
    assert [(r["depth_pos_correct"], r["depth_neg_correct"]) for r in rows[1::2]] == [(0.0, 0.0)] * (len(rows) // 2)
    assert ties > 0  # boxes alone tie where the occluder fills most of the box: the masks decide those


# --- tiny random models, from the Hugging Face cache layout -------------------------------------

REV = "2" * 40


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    from relbench.testing.models.depth import save_tiny_depth_anything, save_tiny_dpt

    root = tmp_path_factory.mktemp("depth")
    return {"dpt": save_tiny_dpt(root / "dpt"), "depth_anything": save_tiny_depth_anything(root / "da"),
            "metric": save_tiny_depth_anything(root / "dam", kind="metric")}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def cache(repo, files):
        root = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        (root / "refs").mkdir(parents=True)
        (root / "refs" / "main").write_text(REV)
        shutil.copytree(files, root / "snapshots" / REV)
        return root / "snapshots" / REV

    return cache


def _direct_nearness(directory, cls_name, image, sign):
    """The model run by hand (processor, forward, bicubic resize to the image): what the judge must read."""
    import torch
    import transformers

    processor = transformers.AutoImageProcessor.from_pretrained(directory)
    model = getattr(transformers, cls_name).from_pretrained(directory).eval()
    with torch.no_grad():
        pred = model(**processor(images=[np.array(image)], return_tensors="pt")).predicted_depth
    out = torch.nn.functional.interpolate(pred.unsqueeze(1), size=image.shape[:2], mode="bicubic", align_corners=False)
    return sign * out[0, 0].numpy()


@pytest.mark.parametrize("which,cls_name,sign", [("dpt", "DPTForDepthEstimation", 1.0),
                                                 ("depth_anything", "DepthAnythingForDepthEstimation", 1.0),
                                                 ("metric", "DepthAnythingForDepthEstimation", -1.0)])
def test_tiny_models_give_nearness_at_the_image_size(tiny_dirs, which, cls_name, sign):
    """Relative models (DPT, Depth Anything relative) output inverse depth: kept; the metric Depth
    Anything outputs metres: negated, so larger = nearer for all three."""
    from relbench.models.depth import build_depth

    name = "dpt" if which == "dpt" else "depth_anything"
    rng = np.random.RandomState(1)
    images = [rng.randint(0, 255, (40, 56, 3), dtype=np.uint8), rng.randint(0, 255, (48, 32, 3), dtype=np.uint8)]
    model = build_depth(name, Spatial.Args(depth=name, depth_model=str(tiny_dirs[which])))
    maps = model.nearness_many(images)
    for im, got in zip(images, maps):
        want = _direct_nearness(tiny_dirs[which], cls_name, im, sign)
        assert got.shape == im.shape[:2] and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert (sign * got >= 0).all()  # both heads end non-negative (ReLU; metric: sigmoid x max_depth)
    assert not np.allclose(maps[0], maps[0].mean())  # the map depends on the pixels


@pytest.mark.parametrize("mode", ["relation", "neutral"])
@pytest.mark.parametrize("name,which", [("dpt", "dpt"), ("depth_anything", "depth_anything")])
def test_tiny_models_through_the_metric_from_the_cache(tiny_dirs, hub, name, which, mode):
    """depth_model: a repo id found in the HF cache; the row's verdict is the rule on the map
    the model gives for that image, in both prompt modes."""
    from relbench.testing.samples import make_sample

    hub(f"org/tiny-{which}", tiny_dirs[which])
    pos, neg = (Triple("red square", "in front of", "blue circle"),), (Triple("blue circle", "in front of", "red square"),)
    case = Case(id="c", item_id="t", pos=pos, neg=neg, negative_kind="swap", seed=0)
    from relbench.shapes.reference import render_reference

    imgs = {"p": render_reference(pos, 0, (64, 64))[0], "n": render_reference(neg, 0, (64, 64))[0]}
    m = Spatial(Spatial.Args(detector="shapes", depth=name, depth_model=f"org/tiny-{which}",
                             depth_rule_set=["depth", "t2i_compbench_3d"]), CTX)
    row = m.score([make_sample(case, "p", "n", imgs.__getitem__, mode)])[0]
    cls_name = {"dpt": "DPTForDepthEstimation", "depth_anything": "DepthAnythingForDepthEstimation"}[name]
    for side, graph, key in (("pos", pos, "p"), ("neg", neg, "n")):
        near = _direct_nearness(tiny_dirs[which], cls_name, imgs[key], 1.0)
        masks = m.detector.masks(imgs[key], [graph[0].subject, graph[0].object])
        boxes = m.detector.detect(imgs[key], [graph[0].subject, graph[0].object])
        a, b = (masks[n] for n in (graph[0].subject, graph[0].object))
        ba, bb = (boxes[n][0] for n in (graph[0].subject, graph[0].object))
        want = depth_relation_holds("depth", "in front of", near, a, b)
        assert row[f"depth_{side}_correct"] == float(want)
        assert json.loads(row[f"{side}_nearness"])[graph[0].subject] == pytest.approx(region_median(near, a), abs=1e-4)
        assert row[f"t2i_compbench_3d_{side}_correct"] == float(
            depth_relation_holds("t2i_compbench_3d", "in front of", near, ba, bb))
    assert m.weights_identity()["depth"]["weights"] is not None


def test_depth_weights_are_in_the_fingerprint(tiny_dirs, tmp_path, monkeypatch):
    import torch
    from transformers import DPTForDepthEstimation

    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "hash-cache"))
    d = tmp_path / "dpt"
    shutil.copytree(tiny_dirs["dpt"], d)
    fp = lambda: Spatial(Spatial.Args(detector="shapes", depth="dpt", depth_model=str(d)), CTX).fingerprint()  # noqa: E731
    first = fp()
    model = DPTForDepthEstimation.from_pretrained(d)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(d)
    assert fp() != first
    assert Spatial(Spatial.Args(detector="shapes", depth="depth_anything", depth_model=str(d)), CTX).fingerprint() != fp()


def test_bad_depth_settings_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"unknown depth model 'zoe' \(known: none, "):
        Spatial(Spatial.Args(detector="shapes", depth="zoe"), CTX)
    with pytest.raises(Exception, match=r"unknown rule set 'midas' \(known: depth, t2i_compbench_3d\)"):
        Spatial.Args(depth="dpt", depth_rule_set="midas")
    m = Spatial(Spatial.Args(detector="shapes", depth="dpt", depth_model=str(tmp_path / "nope")), CTX)
    graph, img = _shapes_pair("red square", "in front of", "blue circle", 0)
    case = Case(id="c", item_id="t", pos=graph, neg=graph, negative_kind="swap", seed=0)
    from relbench.testing.samples import make_sample

    with pytest.raises(UserError) as err:
        m.score([make_sample(case, "p", None, {"p": img}.__getitem__)])
    msg = str(err.value)
    assert "\n" not in msg and "not available locally" in msg and "no download" in msg and "hf download" in msg
