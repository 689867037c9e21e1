"""open_clip weights: the pretrained tag's quick_gelu and preprocessing, offline lookup in the
Hugging Face cache, damaged and pickle-payload files (one line, nothing runs), and identity by
content."""

import json
import os
import pickle

import numpy as np
import pytest

from conftest import write_config
from relbench.spec.data import Case, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.metrics.clip_alignment import ClipAlignment
from relbench.models import clip as clip_model
from relbench.spec.predicates import load_vocabulary
from relbench.testing.models.clip import TINY_CONFIG, make_tiny_checkpoint, put_in_hf_cache, register_tiny_tag
from relbench.testing.samples import make_sample

CTX = Context(vocab=load_vocabulary())
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "relbench-cache"))
    return tmp_path / "relbench-cache"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("clip"))


# --- the tag's pretrained config (open_clip's own table) -----------------------------------------


@pytest.mark.parametrize("model,tag,quick_gelu,mean,resize", [
    ("ViT-B-32", "openai", True, OPENAI_MEAN, "shortest"),
    ("ViT-L-14", "openai", True, OPENAI_MEAN, "shortest"),
    ("ViT-B-32", "laion2b_s34b_b79k", None, OPENAI_MEAN, "shortest"),
    ("ViT-B-16-SigLIP", "webli", None, [0.5, 0.5, 0.5], "squash"),
])
def test_tag_sets_quick_gelu_and_preprocessing(tiny, model, tag, quick_gelu, mean, resize):
    spec = clip_model.resolve(model, tiny[1], pretrained=tag)  # a local file with a tag: the tag's config
    assert spec.quick_gelu is quick_gelu
    assert spec.preprocess["mean"] == pytest.approx(mean) and spec.preprocess["resize_mode"] == resize
    assert spec.preprocess["interpolation"] == "bicubic"


def test_file_without_tag_keeps_defaults_unless_stated(tiny):
    spec = clip_model.resolve("ViT-B-32", tiny[1])
    assert spec.quick_gelu is None and dict(spec.preprocess) == {}  # the architecture's own
    spec = clip_model.resolve("ViT-B-32", tiny[1], quick_gelu=True,
                              preprocess={"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "resize_mode": "squash"})
    assert spec.quick_gelu is True and spec.preprocess == {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    # explicit values win over the tag's
    spec = clip_model.resolve("ViT-B-32", tiny[1], pretrained="openai", preprocess={"interpolation": "bilinear"})
    assert spec.quick_gelu is True and spec.preprocess["interpolation"] == "bilinear"


def test_unknown_tag_and_tag_as_checkpoint_are_one_line(tiny):
    with pytest.raises(UserError, match=r"no pretrained tag 'opneai' for ViT-B-32 \(known: openai, laion400m_e31"):
        clip_model.resolve("ViT-B-32", tiny[1], pretrained="opneai")
    with pytest.raises(UserError, match="is an open_clip tag: write pretrained: openai"):
        clip_model.resolve("ViT-B-32", "openai")
    # open_clip's other use of the word: pretrained as a weights path
    assert clip_model.resolve("relbench-tiny-clip", None, pretrained=tiny[1]).weights == clip_model.resolve(
        "relbench-tiny-clip", tiny[1]).weights


def modules(model):
    import torch

    from open_clip.transformer import QuickGELU

    acts = {type(m) for m in model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))}
    return acts


def transform_parts(preprocess):
    import torchvision.transforms as T

    parts = {type(t).__name__: t for t in preprocess.transforms}
    norm, resize = parts["Normalize"], parts["Resize"]
    assert isinstance(norm, T.Normalize)
    return list(norm.mean), list(norm.std), resize, "CenterCrop" in parts


def test_tag_builds_quick_gelu_and_its_preprocessing(tiny, tmp_path, monkeypatch):
    """The tiny architecture given a tag like OpenAI's (quick_gelu) with SigLIP-like
    preprocessing; its weights found in a Hugging Face cache, offline."""
    import huggingface_hub.constants as hf
    from open_clip.transformer import QuickGELU

    model_name, ckpt = tiny
    register_tiny_tag("quick_test", hf_hub="org/tiny-clip/", quick_gelu=True, mean=(0.5, 0.5, 0.5),
                      std=(0.5, 0.5, 0.5), resize_mode="squash", interpolation="bilinear")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError) as err:  # not in the cache yet
        clip_model.resolve(model_name, None, pretrained="quick_test")
    assert "\n" not in str(err.value) and "org/tiny-clip" in str(err.value) and "nothing is downloaded" in str(err.value)
    import torch
    from safetensors.torch import save_file

    save_file(torch.load(ckpt, weights_only=True), tmp_path / "w.safetensors")  # as the HF repos hold them
    cached = put_in_hf_cache(tmp_path / "hub", "org/tiny-clip", "open_clip_model.safetensors", tmp_path / "w.safetensors")
    assert cached.is_symlink()

    m = ClipAlignment(ClipAlignment.Args(model=model_name, pretrained="quick_test"), CTX)
    enc = m.encoder
    assert modules(enc.model) == {QuickGELU}
    mean, std, resize, crop = transform_parts(enc.preprocess)
    assert (mean, std, tuple(resize.size), resize.interpolation.value, crop) == ([0.5] * 3, [0.5] * 3, (32, 32), "bilinear", False)
    assert clip_model.resolve(model_name, None, pretrained="quick_test").weights == cached

    plain = ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt), CTX).encoder  # no tag: defaults

    assert modules(plain.model) == {torch.nn.GELU}
    mean, std, resize, crop = transform_parts(plain.preprocess)
    assert (mean, std, resize.size, resize.interpolation.value, crop) == (OPENAI_MEAN, OPENAI_STD, 32, "bicubic", True)
    stated = ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt, quick_gelu=True,
                                              preprocess={"mean": [0.1, 0.2, 0.3]}), CTX).encoder
    assert modules(stated.model) == {QuickGELU} and transform_parts(stated.preprocess)[0] == [0.1, 0.2, 0.3]

    # the same weights score differently with QuickGELU: the activation is part of the model
    s = sample()
    a, b = m.score([s])[0], ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt), CTX).score([s])[0]
    assert a["clip_pos_correct"] != pytest.approx(b["clip_pos_correct"], abs=1e-6)
    # and the fingerprint knows: tag, quick_gelu and preprocessing are part of the identity
    assert m.fingerprint() != ClipAlignment(ClipAlignment.Args(model=model_name, checkpoint=ckpt), CTX).fingerprint()


IMAGES = {k: np.random.RandomState(i).randint(0, 256, (40, 48, 3), dtype=np.uint8) for i, k in enumerate(("a", "b"))}


def sample():
    case = Case(id="c0", item_id="t0", pos=(Triple("dog", "riding", "horse"),), neg=(Triple("horse", "riding", "dog"),),
                negative_kind="swap", seed=0)
    return make_sample(case, "a", "b", IMAGES.__getitem__)


# --- damaged and pickle-payload files ------------------------------------------------------------


class Payload:
    """Unpickling this creates the marker file (open(marker, "w")): proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def bad_files(tmp_path, tiny_ckpt):
    import torch

    marker = tmp_path / "PWNED"
    files = {}
    files["pickle.bin"] = pickle.dumps(Payload(marker))
    p = tmp_path / "torch_payload.pt"
    torch.save({"visual.proj": Payload(marker)}, p)
    files["torch_payload.pt"] = p.read_bytes()
    files["truncated.bin"] = open(tiny_ckpt, "rb").read()[:1000]
    files["noise.pth"] = np.random.RandomState(0).bytes(4096)
    files["empty.bin"] = b""
    files["list.pt"] = (lambda q: (torch.save([torch.zeros(2)], q), q.read_bytes())[1])(tmp_path / "l.pt")
    files["text.safetensors"] = b"not a safetensors file"
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return marker, out


def test_bad_weights_files_are_one_line_and_run_nothing(tiny, tmp_path):
    marker, files = bad_files(tmp_path, tiny[1])
    for name, path in files.items():
        m = ClipAlignment(ClipAlignment.Args(model=tiny[0], checkpoint=str(path)), CTX)
        with pytest.raises(UserError) as err:
            m.score([sample()])
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg, (name, msg)
        assert not marker.exists(), name


def clip_run(tmp_path, weights: bytes):
    """A shapes benchmark scored by clip_alignment from an open_clip directory holding ``weights``
    (the form a subprocess can load: the tiny architecture is registered in this process only)."""

    d = tmp_path / "clip"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    (d / "open_clip_pytorch_model.bin").write_bytes(weights)
    cfg = write_config(tmp_path / "bench.yaml", f"""\
name: clip
suite: {{kind: shapes, triples_per_predicate: 1}}
seeds: [0]
metrics:
  - {{name: clip_alignment, args: {{checkpoint: {d}}}}}
runs:
  - {{name: oracle, generator: shapes_oracle}}
output_dir: {tmp_path / 'out'}
""")
    return cfg, d / "open_clip_pytorch_model.bin"


@pytest.mark.slow
def test_pickle_payload_through_the_cli_exits_2(cli, tmp_path):
    marker, files = bad_files(tmp_path, make_tiny_checkpoint(tmp_path / "tiny")[1])
    cfg, _ = clip_run(tmp_path, files["pickle.bin"].read_bytes())
    res = cli("run", "--config", str(cfg), "--no-progress", env={"RELBENCH_CACHE_DIR": str(tmp_path / "c")})
    assert res.returncode == 2, res.stderr
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "open_clip_pytorch_model.bin" in err[0] and "Traceback" not in res.stderr, res.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()  # stopped before any image


# --- identity by content -------------------------------------------------------------------------


def same_size_other_bytes(path):
    """Overwrite ``path`` in place with other weights of exactly the same size (another seed)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        other = open(make_tiny_checkpoint(d, seed=1)[1], "rb").read()
    assert len(other) == os.path.getsize(path) and other != open(path, "rb").read()
    st = os.stat(path)
    with open(path, "wb") as fh:
        fh.write(other)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # whatever the filesystem's clock did


def test_replaced_weights_change_the_fingerprint(tmp_path):
    model_name, ckpt = make_tiny_checkpoint(tmp_path)
    old = os.stat(ckpt)
    os.utime(ckpt, ns=(old.st_atime_ns, old.st_mtime_ns - 10**10))  # settled: its hash gets cached
    args = ClipAlignment.Args(model=model_name, checkpoint=ckpt)
    first = ClipAlignment(args, CTX).fingerprint()
    assert ClipAlignment(args, CTX).fingerprint() == first
    same_size_other_bytes(ckpt)
    assert ClipAlignment(args, CTX).fingerprint() != first


@pytest.mark.slow
def test_replaced_weights_are_rescored_by_the_cli(cli, tmp_path):
    """Same config, weights file replaced by same-size other bytes: the second run scores again
    (new score cache, other numbers) instead of reusing the old scores."""

    cfg, weights = clip_run(tmp_path, open(make_tiny_checkpoint(tmp_path / "tiny")[1], "rb").read())
    env = {"RELBENCH_CACHE_DIR": str(tmp_path / "c")}
    scores = tmp_path / "out" / "cache" / "scores"

    def run():
        res = cli("run", "--config", str(cfg), "--no-progress", env=env)
        assert res.returncode == 0, res.stderr
        return json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]["oracle"]["metrics"]

    a = run()
    assert len(list(scores.iterdir())) == 1
    same_size_other_bytes(weights)
    b = run()
    assert len(list(scores.iterdir())) == 2  # scored again under the new weights' fingerprint
    assert a["clip_pos_correct"]["value"] != pytest.approx(b["clip_pos_correct"]["value"], abs=1e-6)


def test_hf_tokenizer_is_read_offline(tiny, tmp_path, monkeypatch):
    """SigLIP's text side uses a Hugging Face tokenizer: read from the cache only, else one line."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    spec = clip_model.resolve("ViT-B-16-SigLIP", tiny[1], pretrained="webli")
    with pytest.raises(UserError) as err:
        clip_model.tokenizer(spec)
    msg = str(err.value)
    assert "\n" not in msg and "timm/ViT-B-16-SigLIP" in msg and "nothing is downloaded" in msg
    assert clip_model.tokenizer(clip_model.resolve(*tiny))(["a dog"]).shape == (1, 16)  # open_clip's own BPE


@pytest.mark.slow
def test_neutral_run_scores_like_the_relation_run(cli, tmp_path):
    """The shapes oracle draws from the graph, so its relation and neutral runs hold the same
    images: clip_alignment must give them the same scores (it reads the relation texts). Before
    the fix every neutral case read margin 0 and accuracy 0.5."""
    import csv

    cfg, _ = clip_run(tmp_path, open(make_tiny_checkpoint(tmp_path / "tiny")[1], "rb").read())
    cfg.write_text(cfg.read_text().replace(
        "  - {name: oracle, generator: shapes_oracle}\n",
        "  - {name: oracle, generator: shapes_oracle}\n  - {name: neutral, generator: shapes_oracle, prompt_mode: neutral}\n"))
    res = cli("run", "--config", str(cfg), "--no-progress", env={"RELBENCH_CACHE_DIR": str(tmp_path / "c")})
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "samples.csv").open()))
    by_run = {run: {r["case_id"]: r for r in rows if r["run"] == run} for run in ("oracle", "neutral")}
    assert by_run["oracle"] and by_run["oracle"].keys() == by_run["neutral"].keys()
    for case, rel in by_run["oracle"].items():
        neu = by_run["neutral"][case]
        assert neu["prompt_pos"] == neu["prompt_neg"] != rel["prompt_pos"]
        assert (neu["image_pos"], neu["image_neg"]) == (rel["image_pos"], rel["image_neg"])
        for col in ("clip_pos_margin", "clip_neg_margin", "clip_acc"):
            assert float(neu[col]) == pytest.approx(float(rel[col]), abs=1e-5)
    assert any(float(r["clip_pos_margin"]) != 0.0 for r in by_run["neutral"].values())


def test_untagged_weights_file_is_flagged(tiny, tmp_path):
    """Nothing said about how a weights file was trained: the run's summary says which defaults
    were assumed (a warning line, the numbers stay)."""
    flags = ClipAlignment(ClipAlignment.Args(model=tiny[0], checkpoint=tiny[1]), CTX).flags
    assert len(flags) == 1 and flags[0].startswith("no pretrained tag: tiny_clip.pt built as relbench-tiny-clip's")
    for said in ({"pretrained": "openai"}, {"quick_gelu": False}, {"preprocess": {"resize_mode": "squash"}}):
        assert ClipAlignment(ClipAlignment.Args(model="ViT-B-32", checkpoint=tiny[1], **said), CTX).flags == []
    d = tmp_path / "local"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))  # the config says it
    assert ClipAlignment(ClipAlignment.Args(checkpoint=str(d)), CTX).flags == []
