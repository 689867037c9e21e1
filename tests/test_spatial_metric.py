"""The spatial metric: wiring (tiny GroundingDINO) and arithmetic (hand-made boxes via a stub)."""

import json

import numpy as np
import pytest

from relbench.models.detectors import Detector, register_detector
from relbench.metrics.spatial import Spatial
from relbench.spec.data import Case, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())

# image id (the value of pixel [0, 0, 0]) -> name -> (box, score)
SCENES = {
    1: {"dog": ((0, 0, 10, 10), 0.9), "cat": ((30, 0, 40, 10), 0.7)},  # dog left of cat
    2: {"cat": ((0, 0, 10, 10), 0.8), "dog": ((30, 0, 40, 10), 0.8)},  # cat left of dog
    3: {"dog": ((0, 0, 10, 10), 0.9)},  # the cat is missing
    4: {"dog": ((0, 0, 10, 10), 1.0), "cat": ((1, 0, 11, 10), 1.0)},  # 1 px apart
}
CALLS = []


@register_detector("stub_boxes")
class StubDetector(Detector):
    """Test-only: returns the hand-made boxes of SCENES for the image's id pixel."""

    def detect_many(self, items):
        out = []
        for image, names in items:
            CALLS.append((int(image[0, 0, 0]), tuple(names)))
            scene = SCENES[int(image[0, 0, 0])]
            out.append({n: scene.get(n) for n in names})
        return out


def image(i):
    img = np.zeros((8, 8, 3), np.uint8)
    img[0, 0, 0] = i
    return img


def sample(pos, neg, kpos, kneg, kind="swap"):
    case = Case(id=f"c{kpos}{kneg}{pos}", item_id="t", pos=(Triple(*pos),), neg=(Triple(*neg),), negative_kind=kind, seed=0)
    keys = {f"k{i}": image(i) for i in SCENES}
    return Sample(case, "run", " ".join(pos), " ".join(neg), kpos, kneg, _load=keys.__getitem__,
                  texts=(" ".join(pos), " ".join(neg)))


def metric(**kw):
    return Spatial(Spatial.Args(detector="stub_boxes", **kw), CTX)


def aggregate(m, rows):
    out = {}
    for a in m.aggregates():
        vals = np.array([r[a.column] for r in rows if r[a.column] is not None], dtype=float)
        if not len(vals):
            out[a.key] = None
        elif a.statistic == "mean":
            out[a.key] = float(vals.mean())
        else:
            out[a.key] = a.statistic(vals, np.ones_like(vals))
    return out


DOG_CAT, CAT_DOG = ("dog", "left of", "cat"), ("cat", "left of", "dog")


def test_rows_by_hand():
    CALLS.clear()
    m = metric()
    rows = m.score([
        sample(DOG_CAT, CAT_DOG, "k1", "k2"),  # both images right
        sample(DOG_CAT, CAT_DOG, "k1", "k1"),  # text-only generator: one image for both
        sample(DOG_CAT, CAT_DOG, "k3", "k2"),  # cat missing in img_pos
        sample(("dog", "eating", "cat"), ("cat", "eating", "dog"), "k1", "k2"),  # not checkable
        sample(DOG_CAT, CAT_DOG, "k1", None),  # a reference: no g- twin
    ])
    assert set(rows[0]) == set(m.columns())
    # the detections as JSON text, for reports to draw: SCENES[1] for img_pos, SCENES[2] for img_neg
    assert json.loads(rows[0].pop("pos_boxes")) == {"dog": [0, 0, 10, 10, 0.9], "cat": [30, 0, 40, 10, 0.7]}
    assert json.loads(rows[0].pop("neg_boxes")) == {k: [*b, sc] for k, (b, sc) in SCENES[2].items()}
    assert json.loads(rows[2]["pos_boxes"]) == {"dog": [0, 0, 10, 10, 0.9]}  # the missing cat is left out
    assert rows[4]["neg_boxes"] is None
    assert rows[0] == {"pos_detected": 1.0, "neg_detected": 1.0, "pos_checkable": 1.0, "pos_correct": 1.0,
                       "pos_uncond": 1.0, "neg_checkable": 1.0, "neg_correct": 1.0, "neg_uncond": 1.0,
                       "pair_correct": 1.0, "pos_chance": None, "neg_chance": None, "pair_chance": None,
                       "spatial_seen": "left of;far from", "spatial_seen_n": 2.0}
    assert (rows[1]["pos_correct"], rows[1]["neg_correct"], rows[1]["pair_correct"]) == (1.0, 0.0, 0.0)
    assert (rows[2]["pos_detected"], rows[2]["pos_correct"], rows[2]["pos_uncond"]) == (0.0, None, 0.0)
    assert rows[2]["pair_correct"] == 0.0
    assert rows[3]["pos_detected"] == 1.0  # detection is reported even when not judged
    assert (rows[3]["pos_checkable"], rows[3]["pos_correct"], rows[3]["pos_uncond"], rows[3]["pair_correct"]) == (
        0.0, None, None, None)
    assert rows[4]["neg_detected"] is None and rows[4]["neg_correct"] is None and rows[4]["pair_correct"] is None
    assert rows[4]["pos_correct"] == 1.0
    # every (image, name) is detected once across the batch: k1, k2, k3 -> three detector queries
    assert sorted(c[0] for c in CALLS) == [1, 2, 3]

    agg = aggregate(m, rows)
    assert agg["spatial_pos_detected"] == 0.8  # 4 of 5
    assert agg["spatial_neg_detected"] == 1.0  # 4 of 4 (the reference has none)
    assert agg["spatial_pos_acc_given_detected"] == 1.0  # rows 0, 1, 4
    assert agg["spatial_pos_acc"] == 0.75  # checkable rows 0-2, 4: 1, 1, 0, 1
    assert agg["spatial_neg_acc_given_detected"] == pytest.approx(2 / 3)  # rows 0-2: 1, 0, 1
    assert agg["spatial_pos_not_checkable"] == 1.0
    assert agg["spatial_neg_not_checkable"] == 1.0
    assert agg["spatial_pos_checkable"] == 0.8
    assert agg["spatial_pair_acc"] == pytest.approx(1 / 3)  # rows 0-2: 1, 0, 0
    # OA * cond == uncond when every image is checkable (rows 0-2 and 4 here)
    checkable = [r for r in rows if r["pos_checkable"] == 1.0]
    oa = np.mean([r["pos_detected"] for r in checkable])
    cond = np.mean([r["pos_correct"] for r in checkable if r["pos_correct"] is not None])
    assert oa * cond == agg["spatial_pos_acc"]


def test_detections_are_cached_across_calls():
    CALLS.clear()
    m = metric()
    m.score([sample(DOG_CAT, CAT_DOG, "k1", "k2")])
    m.score([sample(DOG_CAT, CAT_DOG, "k2", "k1")])
    assert len(CALLS) == 2


def test_several_rule_sets_prefix_columns():
    m = metric(rule_set=["relbench", "visor", "t2i_compbench", "geneval"])
    rows = m.score([
        sample(DOG_CAT, CAT_DOG, "k4", "k2"),  # 1 px apart: VISOR says left, GenEval/relbench don't
        sample(DOG_CAT, CAT_DOG, "k1", "k2"),
        sample(("dog", "near", "cat"), ("dog", "far from", "cat"), "k1", "k2", kind="replace"),
    ])
    r = rows[0]
    assert (r["relbench_pos_correct"], r["visor_pos_correct"], r["geneval_pos_correct"]) == (0.0, 1.0, 0.0)
    # T2I: dx = 1 > 0, IoU = 90/110 -> position 0.1/(90/110) = 0.1222; 0.25 + 0.25 + 0.0611 = 0.5611
    assert r["t2i_compbench_pos_correct"] == 0.0
    assert r["t2i_compbench_pos_score"] == pytest.approx(0.5 + 0.5 * 0.1 * 110 / 90)
    # k1: position 1, conf .9 and .7 -> .225 + .175 + .5 = .9 ; k2 (neg, cat left of dog): .2 + .2 + .5
    assert rows[1]["t2i_compbench_pos_score"] == pytest.approx(0.9)
    assert rows[1]["t2i_compbench_neg_score"] == pytest.approx(0.9)
    # near / far from: relbench judges both; VISOR/GenEval have no rule; T2I has near only
    r = rows[2]
    assert r["relbench_pos_checkable"] == 1.0 and r["relbench_pos_correct"] == 0.0  # gap 20 > 2.5
    assert r["relbench_neg_correct"] == 1.0  # gap 20 >= 7.5: far
    assert r["visor_pos_checkable"] == 0.0 and r["geneval_neg_checkable"] == 0.0
    assert r["t2i_compbench_pos_correct"] == 1.0  # |dx| = 30 < 150 px
    assert r["t2i_compbench_neg_checkable"] == 0.0 and r["t2i_compbench_neg_score"] is None
    agg = aggregate(m, rows)
    assert agg["spatial_visor_pos_not_checkable"] == 1.0
    assert agg["spatial_relbench_pos_not_checkable"] == 0.0
    assert "spatial_t2i_compbench_pos_score" in agg and "spatial_pos_detected" in agg


def test_same_name_triple_not_checkable():
    rows = metric().score([sample(("dog", "left of", "dog"), ("dog", "right of", "dog"), "k1", "k2")])
    assert rows[0]["pos_checkable"] == 0.0 and rows[0]["pos_correct"] is None


def test_bad_args():
    with pytest.raises(Exception, match="unknown rule set"):
        Spatial.Args(rule_set="coco")
    with pytest.raises(UserError, match="unknown detector"):
        Spatial(Spatial.Args(detector="yolo"), CTX)


# --- GroundingDINO wiring with a tiny random model ------------------------------------------


@pytest.fixture(scope="module")
def tiny_grounding_dino(tmp_path_factory):
    from relbench.testing.models.grounding_dino import save_tiny_grounding_dino

    return save_tiny_grounding_dino(tmp_path_factory.mktemp("gdino"))


def gd_sample(kpos="a", kneg="b"):
    rng = np.random.RandomState(0)
    imgs = {"a": rng.randint(0, 255, (64, 64, 3), dtype=np.uint8), "b": rng.randint(0, 255, (64, 64, 3), dtype=np.uint8)}
    case = Case(id="c", item_id="t", pos=(Triple("dog", "left of", "red cube"),),
                neg=(Triple("red cube", "left of", "dog"),), negative_kind="swap", seed=0)
    return Sample(case, "run", "a dog to the left of a red cube", "a red cube to the left of a dog", kpos, kneg,
                  _load=imgs.__getitem__, texts=("a dog to the left of a red cube", "a red cube to the left of a dog"))


def test_grounding_dino_tiny_model_wiring(tiny_grounding_dino):
    m = Spatial(Spatial.Args(detector="grounding_dino", model=str(tiny_grounding_dino),
                             box_threshold=0.0, text_threshold=0.0, batch_size=3), CTX)
    found = m.detector.detect(gd_sample()._load("a"), ["dog", "red cube"])
    for name in ("dog", "red cube"):
        box, score = found[name]
        assert 0.0 <= score <= 1.0
        assert -1e-3 <= box[0] <= box[2] <= 64 + 1e-3 and -1e-3 <= box[1] <= box[3] <= 64 + 1e-3
    row = m.score([gd_sample()])[0]
    assert row["pos_detected"] == 1.0 and row["neg_detected"] == 1.0  # threshold 0 keeps a box
    assert row["pos_correct"] in (0.0, 1.0) and row["pos_uncond"] == row["pos_correct"]
    m.close()

    strict = Spatial(Spatial.Args(detector="grounding_dino", model=str(tiny_grounding_dino), box_threshold=1.0), CTX)
    row = strict.score([gd_sample()])[0]
    assert row["pos_detected"] == 0.0 and row["pos_correct"] is None and row["pos_uncond"] == 0.0


def test_grounding_dino_missing_model_is_one_line(tmp_path):
    m = Spatial(Spatial.Args(detector="grounding_dino", model=str(tmp_path / "nope")), CTX)
    with pytest.raises(UserError) as err:
        m.score([gd_sample()])
    msg = str(err.value)
    assert "\n" not in msg and "not available locally" in msg and "no download" in msg


# --- shapes renders in both prompt modes: the right answer is known ----------------------------


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_shapes_renders_both_prompt_modes(mode):
    """img_pos draws g+ and img_neg draws g- (the world's reference renderer); the spatial
    metric judges each against its own graph, whatever the generator's prompts said."""
    from relbench.shapes.reference import render_reference
    from relbench.testing.samples import make_sample

    pos, neg = (Triple("red square", "left of", "blue circle"),), (Triple("blue circle", "left of", "red square"),)
    case = Case(id="c", item_id="t", pos=pos, neg=neg, negative_kind="swap", seed=0)
    imgs = {"pos": render_reference(pos, 0, (64, 64))[0], "neg": render_reference(neg, 0, (64, 64))[0]}
    m = Spatial(Spatial.Args(detector="shapes"), CTX)
    right = make_sample(case, "pos", "neg", imgs.__getitem__, mode)
    swapped = make_sample(case, "neg", "pos", imgs.__getitem__, mode)
    ignored = make_sample(case, "pos", "pos", imgs.__getitem__, mode)
    assert (right.prompt_pos == right.prompt_neg) == (mode == "neutral")
    rows = m.score([right, swapped, ignored])
    assert [(r["pos_detected"], r["neg_detected"]) for r in rows] == [(1.0, 1.0)] * 3
    assert [(r["pos_correct"], r["neg_correct"], r["pair_correct"]) for r in rows] == [
        (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)]


# --- GroundingDINO's phrase rule on planted logits ----------------------------------------------

# one query "dog." tokenised [CLS] dog . [SEP] (positions 0-3), padded to the model's 16 tokens
PLANTED = {  # query -> (position -> probability), box (cx, cy, w, h) normalised
    0: ({2: 0.90, 1: 0.10}, (0.50, 0.50, 0.20, 0.20)),  # only "." is confident
    1: ({1: 0.62, 2: 0.30}, (0.25, 0.50, 0.30, 0.40)),  # the name itself at 0.62
    2: ({3: 0.95, 0: 0.97}, (0.75, 0.50, 0.20, 0.20)),  # only [SEP] (and [CLS])
}


def planted_outputs(queries=10, text_len=16):
    import torch

    logit = lambda p: float(torch.logit(torch.tensor(p)))  # noqa: E731
    logits = torch.full((1, queries, text_len), -20.0)
    boxes = torch.full((1, queries, 4), 0.5)
    for q, (probs, box) in PLANTED.items():
        for pos, p in probs.items():
            logits[0, q, pos] = logit(p)
        boxes[0, q] = torch.tensor(box)
    return logits, boxes


def test_name_box_from_planted_probabilities():
    import torch

    from relbench.models.detectors import best_name_box

    logits, boxes = planted_outputs()
    found = best_name_box(logits[0].sigmoid(), boxes[0], [1], 0.35, 0.25, (64, 48))
    (x0, y0, x1, y1), score = found
    # query 1: cx .25*64 = 16, w .3*64 = 19.2; cy .5*48 = 24, h .4*48 = 19.2
    assert (x0, y0, x1, y1) == pytest.approx((6.4, 14.4, 25.6, 33.6), abs=1e-4) and score == pytest.approx(0.62, abs=1e-5)
    assert best_name_box(logits[0].sigmoid(), boxes[0], [1], 0.65, 0.25, (64, 48)) is None  # 0.62 < 0.65
    assert best_name_box(logits[0].sigmoid(), boxes[0], [1], 0.35, 0.70, (64, 48)) is None  # no name token > 0.7
    # a box reaching past the image is clipped to it
    probs = torch.zeros(1, 4)
    probs[0, 1] = 0.9
    (x0, y0, x1, y1), _ = best_name_box(probs, torch.tensor([[0.95, 0.05, 0.3, 0.3]]), [1], 0.35, 0.25, (64, 48))
    assert (x0, y0, x1, y1) == pytest.approx((0.8 * 64, 0.0, 64.0, 0.2 * 48))


def test_grounding_dino_name_box_on_planted_logits(tiny_grounding_dino, monkeypatch):
    """The detector end to end with the tiny model's outputs replaced by planted logits: the box
    whose only confident token is "." (query 0) or [SEP] (query 2) never stands for "dog"."""
    from types import SimpleNamespace

    m = Spatial(Spatial.Args(detector="grounding_dino", model=str(tiny_grounding_dino)), CTX)
    det = m.detector
    real = det.model
    ids = det.processor(images=[gd_sample()._load("a")], text=["dog."], return_tensors="pt")["input_ids"][0].tolist()
    assert ids[:4] == [2, 6, 5, 3]  # [CLS] dog . [SEP] in the tiny vocabulary
    logits, boxes = planted_outputs(real.config.num_queries, real.config.max_text_len)

    def planted(**inputs):
        out = real(**inputs)
        return SimpleNamespace(logits=logits.to(out.logits.dtype), pred_boxes=boxes.to(out.pred_boxes.dtype))

    monkeypatch.setattr(det, "model", planted)
    (x0, y0, x1, y1), score = det.detect(gd_sample()._load("a"), ["dog"])["dog"]
    assert (x0, y0, x1, y1) == pytest.approx((0.1 * 64, 0.3 * 64, 0.4 * 64, 0.7 * 64), abs=1e-3)  # query 1
    assert score == pytest.approx(0.62, abs=1e-5)


def test_grounding_dino_weights_are_in_the_fingerprint(tiny_grounding_dino, tmp_path, monkeypatch):
    """Replacing the model's weights by other weights of the same name changes the fingerprint
    (cached scores are not reused); the shapes detector has no weights."""
    import shutil

    import torch
    from transformers import GroundingDinoForObjectDetection

    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "hash-cache"))
    d = tmp_path / "gd"
    shutil.copytree(tiny_grounding_dino, d)
    fp = lambda: Spatial(Spatial.Args(detector="grounding_dino", model=str(d)), CTX).fingerprint()  # noqa: E731
    first = fp()
    assert fp() == first
    model = GroundingDinoForObjectDetection.from_pretrained(d)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(d)
    assert fp() != first
    assert Spatial(Spatial.Args(detector="shapes"), CTX).fingerprint() == Spatial(Spatial.Args(detector="shapes"), CTX).fingerprint()
