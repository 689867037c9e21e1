"""The peers' detectors (OWL-ViT / OWLv2, VISOR's; Mask2Former, GenEval's architecture): box
rules on planted outputs with known answers, tiny random models through the spatial metric,
missing weights in one line, and two detectors judging one run."""

import json

import numpy as np
import pytest
import torch

from relbench.errors import UserError
from relbench.metrics.spatial import Spatial
from relbench.models.coco import coco_class
from relbench.models.detectors import best_query_boxes, instance_boxes
from relbench.plugin.context import Context
from relbench.spec.data import Case, Triple
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from relbench.testing.models.mask2former import save_tiny_mask2former
    from relbench.testing.models.owlvit import save_tiny_owl

    d = tmp_path_factory.mktemp("peers")
    return {"owlvit": save_tiny_owl(d / "owlvit", 1), "owlv2": save_tiny_owl(d / "owlv2", 2),
            "mask2former": save_tiny_mask2former(d / "m2f")}


# --- OWL: each box belongs to its arg-max query; normalised boxes scale per processor ------------

def test_owl_box_rule_on_planted_logits():
    logit = lambda p: float(torch.logit(torch.tensor(p)))  # noqa: E731
    logits = torch.full((4, 2), -20.0)  # 4 boxes, queries ("dog", "cat")
    logits[0] = torch.tensor([logit(0.6), logit(0.5)])  # dog's (cat's 0.5 loses the arg-max)
    logits[1] = torch.tensor([logit(0.3), logit(0.05)])  # dog's, weaker
    logits[2] = torch.tensor([logit(0.05), logit(0.08)])  # cat's, below VISOR's 0.1
    boxes = torch.tensor([[0.25, 0.25, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2], [0.7, 0.2, 0.2, 0.2], [0.5, 0.5, 1, 1]])
    v1 = best_query_boxes(logits, boxes, ["dog", "cat"], 0.1, (200, 100), pads_to_square=False)
    assert v1["dog"][0] == pytest.approx((40, 20, 60, 30)) and v1["dog"][1] == pytest.approx(0.6)
    assert v1["cat"] is None  # its only box scores 0.08 <= 0.1; box 0 is the dog's
    # OWLv2 pads 200x100 to a 200-px square: y fractions are of 200 px, not 100
    v2 = best_query_boxes(logits, boxes, ["dog", "cat"], 0.1, (200, 100), pads_to_square=True)
    assert v2["dog"][0] == pytest.approx((40, 40, 60, 60))
    low = best_query_boxes(logits, boxes, ["dog", "cat"], 0.07, (200, 100), pads_to_square=False)
    assert low["cat"][0] == pytest.approx((120, 10, 160, 30)) and low["cat"][1] == pytest.approx(0.08)


def test_owl_keeps_every_box_of_a_name_for_visors_any_pair_rule():
    """VISOR credits a relation any pair of boxes shows: query_boxes keeps each name's every box
    above the threshold, best first (the best is best_query_boxes'), and the OWL detectors say so."""
    from relbench.models.detectors import DETECTORS, query_boxes

    logit = lambda p: float(torch.logit(torch.tensor(p)))  # noqa: E731
    logits = torch.full((3, 1), -20.0)
    logits[0, 0], logits[1, 0], logits[2, 0] = logit(0.3), logit(0.7), logit(0.05)
    boxes = torch.tensor([[0.25, 0.5, 0.1, 0.2], [0.75, 0.5, 0.1, 0.2], [0.5, 0.5, 0.1, 0.1]])
    every = query_boxes(logits, boxes, ["dog"], 0.1, (100, 100), pads_to_square=False)["dog"]
    assert [b for b, _ in every] == [pytest.approx((70, 40, 80, 60)), pytest.approx((20, 40, 30, 60))]
    assert [s for _, s in every] == [pytest.approx(0.7), pytest.approx(0.3)]  # 0.05 is under 0.1
    assert best_query_boxes(logits, boxes, ["dog"], 0.1, (100, 100), pads_to_square=False)["dog"] == every[0]
    assert DETECTORS["owlvit"].all_boxes and DETECTORS["owlv2"].all_boxes


@pytest.mark.parametrize("kind", ["owlvit", "owlv2"])
def test_owl_detector_end_to_end_on_planted_outputs(tiny, kind, monkeypatch):
    """The detector with the tiny model's outputs replaced: VISOR's query texts reach the
    processor, the filler query of a shorter list never answers, boxes come back in pixels."""
    from types import SimpleNamespace

    m = Spatial(Spatial.Args(detector=kind, model=str(tiny[kind])), CTX)
    det = m.detector
    assert det.threshold == 0.1  # VISOR's
    seen = []
    real_processor = det.processor

    def spy(**kw):
        seen.append(kw["text"])
        return real_processor(**kw)

    n_boxes = (64 // 16) ** 2
    logits = torch.full((2, n_boxes, 2), -20.0)
    logits[0, 3, 1] = 2.0  # image 0: "red cube" at box 3; image 1's filler query scores high
    logits[1, 5, 0], logits[1, 6, 1] = 1.0, 5.0
    boxes = torch.full((2, n_boxes, 4), 0.5)
    boxes[0, 3] = torch.tensor([0.5, 0.25, 0.5, 0.5])
    boxes[1, 5] = torch.tensor([0.25, 0.25, 0.5, 0.5])

    def planted(**inputs):
        real(**inputs)
        return SimpleNamespace(logits=logits, pred_boxes=boxes)

    real = det.model
    monkeypatch.setattr(det, "processor", spy)
    monkeypatch.setattr(det, "model", planted)
    img = np.zeros((32, 64, 3), np.uint8)  # 64 wide, 32 high
    found = det.detect_many([(img, ["dog", "red cube"]), (img, ["dog"])])
    assert seen == [[["a photo of a dog", "a photo of a red cube"], ["a photo of a dog", " "]]]
    assert found[0]["dog"] is None
    side_y = 64 if kind == "owlv2" else 32
    assert found[0]["red cube"][0] == pytest.approx((16, min(0.0 * side_y, 32), 48, min(0.5 * side_y, 32)))
    assert found[1] == {"dog": ((0.0, 0.0, 32.0, min(0.5 * side_y, 32)), pytest.approx(float(torch.sigmoid(torch.tensor(1.0)))))}


# --- Mask2Former: mmdet's instance post-processing ------------------------------------------------

def test_instance_boxes_crop_the_padding_and_box_the_mask():
    """A 8x8 image resized to 4x4 and padded right to 4x8: the mask is cropped to the image
    before it is upsampled, and its box is the mask's extent (+1 on the far edges)."""
    cls = torch.zeros(2, 81)
    cls[0, 16] = 10.0  # query 0: dog
    cls[1, 15] = 6.0  # query 1: cat (softmax 0.83)
    masks = torch.full((2, 4, 8), -5.0)
    masks[0, 0:2, 2:4] = 5.0
    masks[0, :, 4:] = 5.0  # on the padding: must not count
    masks[1, 2:4, 0:2] = 5.0
    pixel_mask = torch.zeros(4, 8, dtype=torch.long)
    pixel_mask[:, :4] = 1
    # every (query, class) pair is a candidate, as in mmdet: query 1's mask as a dog scores ~0.01
    found = [f for f in instance_boxes(cls, masks, pixel_mask, (8, 8), {16}) if f[1] > 0.3]
    assert [(label, box) for label, _, box in found] == [(16, (4.0, 0.0, 8.0, 4.0))]
    p_dog = float(torch.softmax(cls[0], 0)[16])
    score = found[0][1]
    # class probability times the mean mask probability inside the mask (2.5 <= logit <= 5 there)
    assert p_dog * float(torch.sigmoid(torch.tensor(2.5))) <= score <= p_dog * float(torch.sigmoid(torch.tensor(5.0)))
    both = [f for f in instance_boxes(cls, masks, pixel_mask, (8, 8), {15, 16}) if f[1] > 0.3]
    assert sorted((label, box) for label, _, box in both) == [(15, (0.0, 4.0, 4.0, 8.0)), (16, (4.0, 0.0, 8.0, 4.0))]


def test_coco_table_maps_names_and_never_guesses():
    assert coco_class("dogs") == "dog" and coco_class("Man") == "person" and coco_class("hot-dog") == "hot dog"
    assert coco_class("tv remote") == "tv remote" and coco_class("sofa") == "couch"
    for name in ("red cube", "lamp", "dog house", "hotdogs stand"):
        assert coco_class(name) is None


def case(pos, neg):
    return Case(id="c" + pos[2], item_id="t" + pos[2], pos=(Triple(*pos),), neg=(Triple(*neg),),
                negative_kind="swap", seed=0)


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_tiny_models_through_the_metric_in_both_prompt_modes(tiny, mode):
    """Tiny random models judge through the metric in either prompt mode; a name without a COCO class makes
    Mask2Former's image not checkable (counted), never "not detected"."""
    from relbench.testing.samples import make_sample

    rng = np.random.RandomState(0)
    imgs = {k: rng.randint(0, 255, (48, 64, 3), dtype=np.uint8) for k in ("p", "n")}
    coco = case(("dog", "left of", "cat"), ("cat", "left of", "dog"))
    lamp = case(("dog", "left of", "lamp"), ("lamp", "left of", "dog"))
    for kind in ("owlvit", "owlv2", "mask2former"):
        m = Spatial(Spatial.Args(detector=kind, model=str(tiny[kind]), score_threshold=0.0, batch_size=2), CTX)
        rows = m.score([make_sample(c, "p", "n", imgs.__getitem__, mode) for c in (coco, lamp)])
        assert set(rows[0]) == set(m.columns())
        # a random model's boxes may all belong to one query (OWL) or class (Mask2Former): found or not
        assert rows[0]["pos_detected"] in (0.0, 1.0)
        assert rows[0]["pos_checkable"] == 1.0 and rows[0]["pos_uncond"] in (0.0, 1.0)
        for name, found in json.loads(rows[0]["pos_boxes"]).items():
            x0, y0, x1, y1, score = found
            assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 48 and 0 <= score <= 1
        if kind == "mask2former":
            assert (rows[1]["pos_undetectable"], rows[1]["pos_detected"], rows[1]["pos_checkable"]) == (1.0, None, 0.0)
            assert rows[1]["pos_uncond"] is None and rows[0]["pos_undetectable"] == 0.0
            assert "spatial_pos_not_detectable" in [a.key for a in m.aggregates()]
        else:
            assert rows[1]["pos_detected"] in (0.0, 1.0) and "pos_undetectable" not in rows[1]
        prov = m.provenance()
        assert prov["detector"] == kind and prov["model"] == str(tiny[kind]) and prov["weights_sha256"]
        assert prov["score_threshold"] == 0.0 and prov["verdicts"] == ["pos_uncond", "neg_uncond"]
        m.close()


@pytest.mark.parametrize("kind,title", [("owlvit", "OWL-ViT"), ("owlv2", "OWLv2"), ("mask2former", "Mask2Former")])
def test_missing_weights_are_one_line(tmp_path, kind, title):
    m = Spatial(Spatial.Args(detector=kind, model=str(tmp_path / "nope")), CTX)
    with pytest.raises(UserError) as err:
        m.detector
    msg = str(err.value)
    assert "\n" not in msg and f"spatial: {title} model" in msg and "no download" in msg


def test_default_thresholds_are_the_peers():
    from relbench.models.detectors import DETECTORS

    args = Spatial.Args()
    assert DETECTORS["owlvit"].settings(args)["score_threshold"] == 0.1  # VISOR
    assert DETECTORS["mask2former"].settings(args)["score_threshold"] == 0.3  # GenEval
    assert DETECTORS["owlvit"].settings(args)["model"] == "google/owlvit-base-patch32"


# --- two detectors judging one run ----------------------------------------------------------------

def test_judge_names_prefix_columns_and_keys():
    m = Spatial(Spatial.Args(detector="shapes", judge="snap"), CTX)
    assert m.key() == "spatial_snap" and all(c.startswith("snap_") for c in m.columns())
    keys = {a.key: a for a in m.aggregates()}
    assert keys["spatial_snap_pair_acc"].requires_detected == ("spatial_snap_pos_detected", "spatial_snap_neg_detected")
    assert keys["spatial_snap_pos_acc"].column == "snap_pos_uncond"


def test_detector_pairs_agree_per_predicate():
    from relbench.stats.agreement import judge_agreement

    rows = [
        {"predicate": "left of", "item_id": "t0", "pos_uncond": 1, "neg_uncond": 0, "o_pos_uncond": 1, "o_neg_uncond": 1},
        {"predicate": "left of", "item_id": "t1", "pos_uncond": 1, "neg_uncond": 1, "o_pos_uncond": 1, "o_neg_uncond": 1},
        {"predicate": "above", "item_id": "t2", "pos_uncond": 0, "neg_uncond": None, "o_pos_uncond": 0, "o_neg_uncond": 1},
    ]
    found = judge_agreement(rows, lambda p: True, resamples=200,
                            spatial={"spatial": ("pos_uncond", "neg_uncond"), "spatial_o": ("o_pos_uncond", "o_neg_uncond")})
    pair = found["spatial~spatial_o"]
    assert pair["predicates"] == "geometric" and pair["overall"]["n"] == 5  # the None is skipped
    assert pair["overall"]["share"] == pytest.approx(4 / 5)
    assert pair["by_predicate"]["left of"]["share"] == pytest.approx(3 / 4)
    assert pair["by_predicate"]["above"]["share"] == 1.0


CONFIG = """\
name: two
suite: {{kind: shapes, triples_per_predicate: 1, predicates: [left of, above]}}
seeds: [0]
resolution: 64
metrics:
  - {{name: spatial, args: {{detector: shapes}}}}
  - {{name: spatial, args: {{detector: shapes_snap{judge}}}}}
runs:
  - {{name: oracle, generator: shapes_oracle}}
output_dir: {out}
"""


def test_two_spatial_metrics_in_one_run(tmp_path, monkeypatch, capsys):
    from relbench.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "same", judge=""))
    assert main(["run", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "each metric may be listed once (a second spatial metric needs its own args.judge)" in err
    assert not (tmp_path / "same").exists()

    cfg.write_text(CONFIG.format(out=tmp_path / "out", judge=", judge: snap"))
    assert main(["run", "--config", str(cfg), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["spatial_snap"]["provenance"]["detector"] == "shapes_snap"
    assert summary["metrics"]["spatial"]["provenance"]["detector"] == "shapes"
    run = summary["runs"]["oracle"]
    # the two exact detectors see the oracle's clean renders alike
    pair = run["agreement"]["spatial~spatial_snap"]
    assert pair["overall"]["share"] == 1.0 and set(pair["by_predicate"]) == {"left of", "above"}
    assert run["metrics"]["spatial_snap_pair_acc"]["value"] == run["metrics"]["spatial_pair_acc"]["value"] == 1.0
