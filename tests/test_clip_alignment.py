"""clip_alignment: the functional twin on hand-written numbers, the metric against an independent
torch computation with a tiny random open_clip model, encode-once, and local-only loading."""

import json

import numpy as np
import pytest

from relbench.testing.models.clip import TINY_CONFIG, make_tiny_checkpoint
from relbench.testing.samples import make_sample
from relbench.metrics.clip_alignment import ClipAlignment, alignment_from_scores
from relbench.spec.data import Case, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())


# --- the functional twin -----------------------------------------------------------------


def test_alignment_from_hand_scores():
    row = alignment_from_scores(13.0, 12.0, 11.0, 12.5)
    assert row["clip_pos_margin"] == 1.0  # 13 - 12
    assert row["clip_neg_margin"] == -1.5  # 11 - 12.5
    assert (row["clip_pos_acc"], row["clip_neg_acc"], row["clip_acc"], row["clip_both_acc"]) == (1.0, 0.0, 0.5, 0.0)
    assert (row["clip_pos_correct"], row["clip_pos_wrong"], row["clip_neg_correct"], row["clip_neg_wrong"]) == (
        13.0, 12.0, 11.0, 12.5)


def test_ties_and_both_right():
    row = alignment_from_scores(12.0, 12.0, 12.5, 12.0)
    assert (row["clip_pos_acc"], row["clip_neg_acc"], row["clip_acc"], row["clip_both_acc"]) == (0.5, 1.0, 0.75, 0.0)
    row = alignment_from_scores(13.0, 12.0, 13.0, 12.0)
    assert (row["clip_acc"], row["clip_both_acc"]) == (1.0, 1.0)


def test_reference_without_negative_image():
    row = alignment_from_scores(12.0, 12.5)
    assert row["clip_acc"] == 0.0 and row["clip_pos_margin"] == -0.5
    assert row["clip_neg_margin"] is None and row["clip_both_acc"] is None and row["clip_neg_acc"] is None


def test_same_image_for_both_graphs_is_exactly_chance():
    # a generator that ignores the relation draws one image I: S(I,p+) - S(I,p-) = -(S(I,p-) - S(I,p+))
    for a, b in [(13.1, 12.7), (12.0, 12.9), (12.0, 12.0)]:
        row = alignment_from_scores(a, b, b, a)
        assert row["clip_acc"] == 0.5 and row["clip_both_acc"] == 0.0


# --- the metric with a tiny random model -------------------------------------------------


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "relbench-cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("clip"))


def images():
    rng = np.random.RandomState(1)
    return {f"img{i}": rng.randint(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(6)}


IMAGES = images()
LOADS = []


def load(key):
    LOADS.append(key)
    return IMAGES[key]


def case_sample(i, kpos, kneg, pos=("dog", "riding", "horse"), neg=("horse", "riding", "dog")):
    case = Case(id=f"c{i}", item_id=f"t{i // 3}", pos=(Triple(*pos),), neg=(Triple(*neg),), negative_kind="swap", seed=i)
    p, n = f"a {pos[0]} {pos[1]} a {pos[2]}", f"a {neg[0]} {neg[1]} a {neg[2]}"
    return Sample(case, "run", p, n, kpos, kneg, _load=load, texts=(p, n))


def independent_scores(model_name, checkpoint, pairs):
    """S(image, text) computed directly with torch, one pair at a time."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    tok = open_clip.get_tokenizer(model_name)
    out = []
    with torch.no_grad():
        for key, text in pairs:
            im = model.encode_image(preprocess(Image.fromarray(IMAGES[key])).unsqueeze(0))[0]
            tx = model.encode_text(tok([text]))[0]
            cos = torch.dot(im / im.norm(), tx / tx.norm())
            out.append(float(model.logit_scale.exp() * cos))
    return out


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_metric_matches_independent_computation(tiny, mode):
    model_name, ckpt = tiny
    m = ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt, batch_size=4), CTX)
    s = make_sample(case_sample(0, "img0", "img1").case, "img0", "img1", load, mode)
    assert s.text_pos == "a photo of a dog riding a horse" and s.text_neg == "a photo of a horse riding a dog"
    row = m.score([s])[0]
    pc, pw, nc, nw = independent_scores(model_name, ckpt, [
        ("img0", s.text_pos), ("img0", s.text_neg), ("img1", s.text_neg), ("img1", s.text_pos)])
    assert row["clip_pos_correct"] == pytest.approx(pc, abs=1e-4)
    assert row["clip_pos_wrong"] == pytest.approx(pw, abs=1e-4)
    assert row["clip_neg_correct"] == pytest.approx(nc, abs=1e-4)
    assert row["clip_neg_wrong"] == pytest.approx(nw, abs=1e-4)
    assert row == pytest.approx(alignment_from_scores(row["clip_pos_correct"], row["clip_pos_wrong"],
                                                      row["clip_neg_correct"], row["clip_neg_wrong"]))
    # the scale is the model's own: a fresh open_clip model starts at exp(log(1/0.07)) = 14.29
    assert m.encoder.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    assert set(row) == set(m.columns())
    keys = {a.key for a in m.aggregates()}
    assert {"clip_alignment_acc", "clip_pos_margin", "clip_neg_margin", "clip_pos_correct", "clip_pos_wrong"} <= keys
    assert next(a for a in m.aggregates() if a.key == "clip_alignment_acc").chance == 0.5


# --- planted embeddings: the right answer is known in both prompt modes ----------------------

# unit text embeddings: p+ -> e0, p- -> e1, the neutral prompt "a photo of a dog and a horse" -> e2
PLANTED_TEXTS = ["a photo of a dog riding a horse", "a photo of a horse riding a dog", "a photo of a dog and a horse"]
# image id (pixel [0, 0, 0]) -> embedding: 1 draws g+ (closer to e0), 2 draws g- (closer to e1)
PLANTED_IMAGES = {1: (0.8, 0.6, 0.0), 2: (0.6, 0.8, 0.0)}


def planted_encoder():
    """The real ClipEncoder around a CLIP whose towers return planted vectors, logit scale 10:
    S(image 1, p+) = 8, S(image 1, p-) = 6, S(image 2, p-) = 8, S(image 2, p+) = 6."""
    import math

    import torch

    from relbench.models.clip import ClipEncoder

    class Planted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
            self.text = torch.eye(3)
            self.image = torch.zeros(3, 3)
            for i, v in PLANTED_IMAGES.items():
                self.image[i] = torch.tensor(v)

        def encode_text(self, ids):
            return self.text[ids]

        def encode_image(self, ids):
            return self.image[ids]

    def tokenizer(texts):
        return torch.tensor([PLANTED_TEXTS.index(t) for t in texts])

    def preprocess(pil):
        return torch.tensor(int(np.asarray(pil)[0, 0, 0]))

    return ClipEncoder(Planted(), preprocess, tokenizer)


def planted_images():
    out = {}
    for i in PLANTED_IMAGES:
        out[f"id{i}"] = np.zeros((4, 4, 3), np.uint8)
        out[f"id{i}"][0, 0, 0] = i
    return out


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_planted_embeddings_both_prompt_modes(mode):
    """The relation texts decide, not the generator's prompts: in neutral mode both images were
    prompted with "a photo of a dog and a horse" (v1 scored that: margins 0, accuracy 0.5)."""
    m = ClipAlignment(ClipAlignment.Args(), CTX)
    m._encoder = planted_encoder()
    imgs = planted_images()
    case = case_sample(0, "id1", "id2").case
    right = make_sample(case, "id1", "id2", imgs.__getitem__, mode)  # each image draws its own graph
    wrong = make_sample(case, "id2", "id1", imgs.__getitem__, mode)  # each image draws the other graph
    same = make_sample(case, "id1", "id1", imgs.__getitem__, mode)  # relation ignored: one image twice
    if mode == "neutral":
        assert right.prompt_pos == right.prompt_neg == "a photo of a dog and a horse"
    rows = m.score([right, wrong, same])
    assert rows[0] == pytest.approx(alignment_from_scores(8.0, 6.0, 8.0, 6.0))
    assert (rows[0]["clip_pos_margin"], rows[0]["clip_acc"], rows[0]["clip_both_acc"]) == pytest.approx((2.0, 1.0, 1.0))
    assert (rows[1]["clip_pos_margin"], rows[1]["clip_acc"], rows[1]["clip_both_acc"]) == pytest.approx((-2.0, 0.0, 0.0))
    assert (rows[2]["clip_acc"], rows[2]["clip_both_acc"]) == (0.5, 0.0)
    assert m.encodings["text"] == 2  # only the two relation texts were encoded


def test_sample_requires_relation_texts():
    case = case_sample(0, "img0", "img1").case
    with pytest.raises(TypeError):
        Sample(case, "run", "p", "p", "img0", "img1", _load=load)  # no silent fallback to the prompts
    with pytest.raises(TypeError, match="two non-empty strings"):
        Sample(case, "run", "p", "p", "img0", "img1", _load=load, texts=("a dog riding a horse", ""))


def test_each_prompt_and_image_encoded_once(tiny):
    model_name, ckpt = tiny
    m = ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt, batch_size=4), CTX)
    LOADS.clear()
    # 3 seeds of one triple (same prompts), one text-only case reusing one image for g+ and g-,
    # and a reference without a g- twin
    samples = [case_sample(0, "img0", "img1"), case_sample(1, "img2", "img3"), case_sample(2, "img4", "img5"),
               case_sample(3, "img0", "img0"), case_sample(4, "img1", None)]
    rows = m.score(samples)
    assert m.encodings == {"image": 6, "text": 2}  # naive protocol: 4*5 = 20 images, 20 texts
    assert sorted(LOADS) == sorted(IMAGES)  # every image loaded once
    assert rows[3]["clip_acc"] == 0.5 and rows[3]["clip_both_acc"] == 0.0
    assert rows[4]["clip_neg_margin"] is None and rows[4]["clip_acc"] in (0.0, 0.5, 1.0)
    m.score(samples[:2])  # cached: nothing new
    assert m.encodings == {"image": 6, "text": 2}


def test_local_dir_checkpoint(tiny, tmp_path):
    import shutil

    model_name, ckpt = tiny
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    shutil.copy(ckpt, tmp_path / "open_clip_pytorch_model.bin")
    by_dir = ClipAlignment(ClipAlignment.Args(model="ignored-with-local-dir", checkpoint=str(tmp_path)), CTX)
    by_file = ClipAlignment(ClipAlignment.Args(model=model_name, pretrained=ckpt), CTX)  # open_clip's own word
    s = case_sample(0, "img0", "img1")
    assert by_dir.score([s])[0] == pytest.approx(by_file.score([s])[0], abs=1e-5)


def one_line_user_error(m):
    with pytest.raises(UserError) as err:
        m.score([case_sample(0, "img0", "img1")])
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_checkpoint_errors(tiny, tmp_path):
    msg = one_line_user_error(ClipAlignment(ClipAlignment.Args(), CTX))
    assert "no weights given" in msg and "nothing is downloaded" in msg
    msg = one_line_user_error(ClipAlignment(ClipAlignment.Args(checkpoint=str(tmp_path / "nope.bin")), CTX))
    assert "not found" in msg and "checkpoint:" in msg
    msg = one_line_user_error(ClipAlignment(ClipAlignment.Args(checkpoint=str(tmp_path)), CTX))
    assert "no weights file" in msg
    msg = one_line_user_error(ClipAlignment(ClipAlignment.Args(model="ViT-Q-99", checkpoint=tiny[1]), CTX))
    assert "unknown open_clip architecture" in msg
    msg = one_line_user_error(ClipAlignment(ClipAlignment.Args(model="ViT-B-32", checkpoint=tiny[1]), CTX))
    assert "cannot load" in msg  # tiny weights do not fit ViT-B-32
    with pytest.raises(UserError):
        ClipAlignment(ClipAlignment.Args(checkpoint="openai"), CTX).fingerprint()  # a tag, not a file


def test_fingerprint_tracks_weights(tiny, tmp_path):
    model_name, ckpt = tiny
    a = ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt), CTX).fingerprint()
    assert a == ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt), CTX).fingerprint()
    other = make_tiny_checkpoint(tmp_path, seed=1)[1]
    assert a != ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=other), CTX).fingerprint()
    bad = tmp_path / "other.pt"
    bad.write_bytes(b"x" * 10)
    with pytest.raises(UserError, match="cannot read weights file"):  # checked with the fingerprint, at plan time
        ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=str(bad)), CTX).fingerprint()


def test_encoding_benchmark_runs_and_halves(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "clip_encodings.py"
    spec = importlib.util.spec_from_file_location("clip_encodings_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--triples", "2", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "12/24" in out and "4/24" in out  # 6 cases: 12 of 24 images, 4 of 24 texts
