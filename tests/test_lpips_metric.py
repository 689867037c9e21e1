"""lpips: zero for identical images, positive otherwise; backbone from a local file only; a
random backbone only on request, and then flagged uncalibrated."""

import hashlib

import numpy as np
import pytest

from relbench.metrics.lpips_pair import BACKBONE_FILES, Lpips, published_prefix
from relbench.spec.data import Case, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())
RNG = np.random.RandomState(0)
IMAGES = {"a": RNG.randint(0, 256, (32, 32, 3), dtype=np.uint8), "c": RNG.randint(0, 256, (32, 32, 3), dtype=np.uint8)}
IMAGES["a_copy"] = IMAGES["a"].copy()


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "hash_cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def sample(kpos, kneg):
    case = Case(id=f"{kpos}-{kneg}", item_id="t", pos=(Triple("dog", "on", "sofa"),),
                neg=(Triple("sofa", "on", "dog"),), negative_kind="swap", seed=0)
    return Sample(case, "run", "p", "n", kpos, kneg, _load=IMAGES.__getitem__, texts=("p", "n"))


SAMPLES = [sample("a", "a_copy"), sample("a", "c"), sample("a", None), sample("a", "a")]


@pytest.mark.parametrize("net,file", [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")])
def test_missing_backbone_is_a_one_line_user_error(net, file, empty_torch_home):
    with pytest.raises(UserError) as err:
        Lpips(Lpips.Args(net=net), CTX)
    msg = str(err.value)
    assert "\n" not in msg and file in msg and str(empty_torch_home) in msg and "allow_random_backbone" in msg
    with pytest.raises(UserError, match="not found"):
        Lpips(Lpips.Args(backbone_checkpoint="/nonexistent/alexnet.pth"), CTX)


def test_random_backbone_on_request_is_flagged():
    m = Lpips(Lpips.Args(allow_random_backbone=True), CTX)
    assert m.calibrated is False and m.flags and "uncalibrated" in m.flags[0]
    assert all(a.description.startswith("UNCALIBRATED") for a in m.aggregates())
    assert [a.key for a in m.aggregates()] == ["lpips_mean", "lpips_std"]
    rows = m.score(SAMPLES)
    assert rows[0]["lpips"] == pytest.approx(0.0, abs=1e-7)  # same pixels, different keys: the net says 0
    assert rows[1]["lpips"] > 0.0
    assert rows[2]["lpips"] is None  # a reference without a g- twin
    assert rows[3]["lpips"] == 0.0  # one image for both graphs
    # the random backbone is seeded: a second instance gives the same number
    again = Lpips(Lpips.Args(allow_random_backbone=True), CTX).score([SAMPLES[1]])[0]["lpips"]
    assert again == pytest.approx(rows[1]["lpips"], rel=1e-6)


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_both_prompt_modes_read_only_pixels(mode):
    """The neutral prompts (identical for g+ and g-) change nothing: same pixels 0, the same
    distance as the relation-mode sample for different pixels."""
    from relbench.testing.samples import make_sample

    m = Lpips(Lpips.Args(allow_random_backbone=True), CTX)
    case = SAMPLES[1].case
    rows = m.score([make_sample(case, "a", "a_copy", IMAGES.__getitem__, mode),
                    make_sample(case, "a", "c", IMAGES.__getitem__, mode)])
    assert rows[0]["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert rows[1]["lpips"] == pytest.approx(m.score([SAMPLES[1]])[0]["lpips"], rel=1e-6) and rows[1]["lpips"] > 0


def test_published_names_are_torchvisions():
    import torchvision.models as tvm

    assert tvm.AlexNet_Weights.IMAGENET1K_V1.url.endswith("/" + BACKBONE_FILES["alex"])
    assert tvm.VGG16_Weights.IMAGENET1K_V1.url.endswith("/" + BACKBONE_FILES["vgg"])
    assert (published_prefix("alex"), published_prefix("vgg")) == ("7be5be79", "397923af")


@pytest.mark.slow
def test_backbone_from_local_file(tmp_path, empty_torch_home, monkeypatch):
    import torch
    import torchvision

    fp_random = Lpips(Lpips.Args(allow_random_backbone=True), CTX).fingerprint()
    torch.manual_seed(123)
    tv = torchvision.models.alexnet(weights=None)
    weights = tmp_path / "alex.pth"
    torch.save(tv.state_dict(), weights)

    # a file that is not torchvision's published alexnet (its sha256 does not start 7be5be79)
    m = Lpips(Lpips.Args(backbone_checkpoint=str(weights)), CTX)
    assert not m.calibrated and "is not torchvision's alexnet-owt-7be5be79.pth" in m.flags[0]
    assert all(a.description.startswith("UNCALIBRATED (not torchvision's weights)") for a in m.aggregates())
    # lpips' slices name their layers by torchvision's feature index
    assert torch.equal(getattr(m.model.net.slice1, "0").weight, tv.features[0].weight)  # conv1
    assert torch.equal(getattr(m.model.net.slice5, "10").weight, tv.features[10].weight)  # conv5
    d = m.score([SAMPLES[1]])[0]["lpips"]
    assert d > 0

    # torch.hub's rule: a file whose sha256 starts with the prefix in the published name is the
    # published file. Publish this one under its own prefix to see the calibrated path.
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    monkeypatch.setitem(BACKBONE_FILES, "alex", f"alexnet-owt-{sha[:8]}.pth")
    m = Lpips(Lpips.Args(backbone_checkpoint=str(weights)), CTX)
    assert m.calibrated and not m.flags and "UNCALIBRATED" not in m.aggregates()[0].description

    # the same file found in torchvision's cache is picked up without any argument
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / BACKBONE_FILES["alex"]).write_bytes(weights.read_bytes())
    m2 = Lpips(Lpips.Args(), CTX)
    assert m2.calibrated and m2.score([SAMPLES[1]])[0]["lpips"] == pytest.approx(d, rel=1e-6)
    # same args, different backbone -> different fingerprint (cached scores are not reused)
    assert Lpips(Lpips.Args(allow_random_backbone=True), CTX).fingerprint() != fp_random

    # the right name with other weights: UNCALIBRATED, and another fingerprint
    torch.manual_seed(124)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), cache / BACKBONE_FILES["alex"])
    m3 = Lpips(Lpips.Args(), CTX)
    assert not m3.calibrated and m3.flags and m3.fingerprint() != m2.fingerprint()

    bad = tmp_path / "bad.pth"
    torch.save({"nope": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="compatible"):
        Lpips(Lpips.Args(backbone_checkpoint=str(bad)), CTX).model


def test_size_mismatch_is_a_user_error():
    IMAGES["small"] = IMAGES["a"][:16]
    m = Lpips(Lpips.Args(allow_random_backbone=True), CTX)
    with pytest.raises(UserError, match="differ in size"):
        m.score([sample("a", "small")])


def test_terminal_table_says_uncalibrated_instead_of_a_number():
    from relbench.results.format import format_table

    entry = {"value": 0.2345, "ci_low": 0.2, "ci_high": 0.3, "n": 4}
    m = Lpips(Lpips.Args(allow_random_backbone=True), CTX)
    summary = {
        "metrics": {"lpips": {"flags": m.flags, "aggregates": {a.key: a.description for a in m.aggregates()}},
                    "pair_mse": {"flags": [], "aggregates": {"mse_mean": "..."}}},
        "runs": {"oracle": {"n_cases": 4, "metrics": {"lpips_mean": entry, "lpips_std": entry, "mse_mean": entry}}},
    }
    rows = {line.split()[0]: line for line in format_table(summary).splitlines() if line.strip()}
    assert "UNCALIBRATED" in rows["lpips_mean"] and "0.2345" not in rows["lpips_mean"]
    assert "UNCALIBRATED" in rows["lpips_std"]
    assert "0.2345 [0.2, 0.3]" in rows["mse_mean"]
    assert rows["WARNING"].startswith("WARNING lpips: uncalibrated")
