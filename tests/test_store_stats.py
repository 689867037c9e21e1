import os
import numpy as np
import pytest

from relbench.atomic import write_bytes
from relbench.data import Request, Triple
from relbench.stats import cluster_bootstrap, point_estimate
from relbench.store import ImageStore

G = (Triple("dog", "riding", "horse"),)


def test_store_roundtrip_is_lossless(tmp_path):
    store = ImageStore(tmp_path)
    img = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    store.put("ab" * 32, img)
    assert store.has("ab" * 32)
    assert np.array_equal(store.get("ab" * 32), img)
    assert store.path("ab" * 32).parent.name == "ab"
    assert [p.name for p in store.path("ab" * 32).parent.iterdir()] == ["ab" * 32 + ".png"]  # no temp files


def test_atomic_files_get_ordinary_permissions(tmp_path):
    write_bytes(tmp_path / "r.json", b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_store_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8 RGB"):
        ImageStore(tmp_path).put("k" * 64, np.zeros((4, 4, 3), dtype=np.float32))


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    write_bytes(p, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_bytes(p, b"new")
    assert p.read_bytes() == b"old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


def test_request_key_uses_only_declared_inputs():
    a = Request("a photo of a dog and a horse", G, 0, (256, 256))
    b = Request("a photo of a dog and a horse", (Triple("horse", "riding", "dog"),), 0, (256, 256))
    assert a.key("fp", frozenset({"prompt"})) == b.key("fp", frozenset({"prompt"}))  # text-only: same image
    assert a.key("fp", frozenset({"prompt", "graph"})) != b.key("fp", frozenset({"prompt", "graph"}))
    assert a.key("fp", frozenset({"prompt"})) != a.key("fp2", frozenset({"prompt"}))
    c = Request(a.prompt, G, 1, (256, 256))
    assert a.key("fp", frozenset({"prompt"})) != c.key("fp", frozenset({"prompt"}))


def test_point_statistics_by_hand():
    assert point_estimate([1, 2, 3, 6], "mean") == 3.0
    # population std of 1,2,3,6: mean 3, squares 4,1,0,9 -> var 14/4
    assert point_estimate([1, 2, 3, 6], "std") == pytest.approx((14 / 4) ** 0.5)


def test_cluster_bootstrap_value_ci_and_n():
    vals = [1.0, 0.0, None, 1.0, 1.0, 0.0]
    res = cluster_bootstrap(vals, ["a", "a", "a", "b", "b", "c"], "mean", n_resamples=500, seed=0)
    assert res["n"] == 5 and res["value"] == pytest.approx(3 / 5)
    assert 0.0 <= res["ci_low"] <= res["value"] <= res["ci_high"] <= 1.0
    assert res == cluster_bootstrap(vals, ["a", "a", "a", "b", "b", "c"], "mean", n_resamples=500, seed=0)


def test_cluster_bootstrap_resamples_triples_not_rows():
    # 40 triples, each seen with 3 perfectly correlated seeds: the interval must equal the one
    # for the 40 triples alone (a row bootstrap would be ~sqrt(3) narrower).
    rng = np.random.default_rng(1)
    per_triple = rng.integers(0, 2, 40).astype(float)
    rows = np.repeat(per_triple, 3)
    clusters = np.repeat([f"t{i}" for i in range(40)], 3)
    clustered = cluster_bootstrap(rows, clusters, n_resamples=2000, seed=0)
    single = cluster_bootstrap(per_triple, [f"t{i}" for i in range(40)], n_resamples=2000, seed=0)
    assert clustered["ci_low"] == pytest.approx(single["ci_low"]) and clustered["ci_high"] == pytest.approx(single["ci_high"])
    rowwise = cluster_bootstrap(rows, [f"r{i}" for i in range(120)], n_resamples=2000, seed=0)
    assert (rowwise["ci_high"] - rowwise["ci_low"]) < 0.75 * (clustered["ci_high"] - clustered["ci_low"])


def test_interval_width_at_seed_sample_sizes():
    # ARCHITECTURE §3: near 0.5, n=480 gives about +-0.045; n=10 about +-0.3
    big = cluster_bootstrap([1.0] * 240 + [0.0] * 240, [str(i) for i in range(480)], seed=0)
    assert 0.035 < (big["ci_high"] - big["ci_low"]) / 2 < 0.055
    small = cluster_bootstrap([1.0] * 5 + [0.0] * 5, [str(i) for i in range(10)], seed=0)
    assert 0.25 < (small["ci_high"] - small["ci_low"]) / 2 < 0.35


def test_degenerate_inputs():
    assert cluster_bootstrap([None, None], ["a", "b"])["n"] == 0
    const = cluster_bootstrap([2.0, 2.0, 2.0], ["a", "b", "c"])
    assert const == {"value": 2.0, "ci_low": 2.0, "ci_high": 2.0, "n": 3}
