import os
import numpy as np
import pytest

from relbench.io.atomic import write_bytes
from relbench.spec.data import Request, Triple
from relbench.stats.bootstrap import cluster_bootstrap, point_estimate
from relbench.engine.store import ImageStore

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
    vals = [1.0, 0.0, None, 1.0, 1.0, 0.0] * 4
    cl = [f"{t}{r}" for r in range(4) for t in ("a", "a", "a", "b", "b", "c")]  # 12 triples
    res = cluster_bootstrap(vals, cl, "mean", n_resamples=500, seed=0)
    assert res["n"] == 20 and res["value"] == pytest.approx(3 / 5) and res["n_triples"] == 12
    assert 0.0 <= res["ci_low"] < res["value"] < res["ci_high"] <= 1.0
    assert res == cluster_bootstrap(vals, cl, "mean", n_resamples=500, seed=0)


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
    # binomial: near 0.5, n=480 independent cases give about +-0.045; n=10 about +-0.3
    big = cluster_bootstrap([1.0] * 240 + [0.0] * 240, [str(i) for i in range(480)], seed=0)
    assert 0.035 < (big["ci_high"] - big["ci_low"]) / 2 < 0.055
    small = cluster_bootstrap([1.0] * 5 + [0.0] * 5, [str(i) for i in range(10)], seed=0)
    assert 0.25 < (small["ci_high"] - small["ci_low"]) / 2 < 0.35


def test_interval_with_three_correlated_seeds_per_triple():
    """README: at n = 480 = 160 triples x 3 seeds an accuracy near 0.5 has an interval of about
    +-0.057, not the iid binomial's +-0.045 (sqrt(0.25 / 480) x 1.96). Seeds correlated as in the
    seed's evaluation (intraclass correlation ~0.3: of 160 triples, 39 have 0 of 3 seeds right,
    41 one, 41 two, 39 all three)."""
    from pathlib import Path

    per_triple = [0] * 39 + [1] * 41 + [2] * 41 + [3] * 39
    rows = [float(s < k) for k in per_triple for s in range(3)]
    res = cluster_bootstrap(rows, np.repeat(np.arange(160), 3).astype(str), seed=0)
    assert res["value"] == pytest.approx(0.5)
    assert 0.052 < (res["ci_high"] - res["ci_low"]) / 2 < 0.062
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "= 160 triples × 3 seeds an accuracy near 0.5 has an interval of about ±0.057" in readme


def test_degenerate_inputs():
    assert cluster_bootstrap([None, None], ["a", "b"])["n"] == 0
    const = cluster_bootstrap([2.0] * 10, list("abcdefghij"))
    assert const == {"value": 2.0, "ci_low": 2.0, "ci_high": 2.0, "n": 10, "n_triples": 10}
    # below MIN_TRIPLES (10) even a constant gets no interval: 9 triples say too little
    assert cluster_bootstrap([2.0] * 9, list("abcdefghi")) == {"value": 2.0, "ci_low": None, "ci_high": None,
                                                               "n": 9, "n_triples": 9}


def test_sparse_column_resamples_only_triples_with_values():
    """A column with values on 10 of 40 triples (an accuracy given detection when detection is
    rare) gets the interval of those 10 triples alone; drawing all 40 left most resamples empty
    and the interval undefined. No library warning reaches the caller."""
    import warnings

    from relbench.stats.bootstrap import cluster_bootstrap_many

    clusters = np.repeat([f"t{i:02d}" for i in range(40)], 3)
    sparse = [None] * 120
    pattern = [1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1]
    for i, v in zip(range(0, 30), pattern):  # triples t00..t09
        sparse[i] = float(v)
    dense = [float(i % 2) for i in range(120)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, full = cluster_bootstrap_many([(sparse, "mean"), (dense, "mean")], clusters, n_resamples=1000, seed=0)
    alone = cluster_bootstrap(sparse[:30], clusters[:30], n_resamples=1000, seed=0)
    assert (got["value"], got["n"], got["n_triples"]) == (pytest.approx(sum(pattern) / 30), 30, 10)
    assert (got["ci_low"], got["ci_high"]) == (alone["ci_low"], alone["ci_high"])
    assert got["ci_low"] < got["value"] < got["ci_high"]
    assert full["n_triples"] == 40 and full["ci_low"] < 0.5 < full["ci_high"]
    # one triple with varying values: a value, an undefined interval (not a crash, not a number)
    one = cluster_bootstrap([1.0, 0.0, 1.0, None], ["a", "a", "a", "b"], n_resamples=200)
    assert one == {"value": pytest.approx(2 / 3), "ci_low": None, "ci_high": None, "n": 3, "n_triples": 1}


def test_terminal_table_shows_undefined_interval():
    """A value whose interval is undefined prints as "value [–]"; formatting it crashed after
    summary.json was written, so report.html was never built."""
    from relbench.results.format import format_table

    summary = {"runs": {"a": {"n_cases": 3, "metrics": {
        "acc_given_detected": {"value": 2 / 3, "ci_low": None, "ci_high": None, "n": 3, "chance": 0.5},
        "acc": {"value": 0.25, "ci_low": 0.1, "ci_high": 0.4, "n": 40, "chance": 0.5},
        "empty": {"value": None, "ci_low": None, "ci_high": None, "n": 0, "chance": None}}}}}
    lines = format_table(summary).splitlines()
    assert lines[2].split() == ["acc_given_detected", "0.5", "0.6667", "[–]"]
    assert lines[3].split() == ["acc", "0.5", "0.25", "[0.1,", "0.4]"]
    assert lines[4].split() == ["empty", "-", "-"]


def test_multi_triple_case_reports_the_triple_its_negative_changed():
    """A graph of several triples: samples.csv's predicate/subject/object (and so the
    per-predicate breakdown) are those of the triple the negative corrupted, not of the first."""
    from types import SimpleNamespace

    from relbench.spec.data import Case, Triple
    from relbench.engine.distributed import topology
    from relbench.results.write import sample_rows, tested_triple
    from relbench.engine.execute import RunResult
    from relbench.engine.plan import Timings

    pos = (Triple("man", "holding", "cup"), Triple("cup", "on", "table"))
    swapped = Case("c1", "t1", pos, (pos[0], Triple("table", "on", "cup")), "swap", 0)
    replaced = Case("c2", "t2", pos, (Triple("man", "wearing", "cup"), pos[1]), "replace", 0)
    assert tested_triple(swapped) == (pos[1], Triple("table", "on", "cup"))
    assert tested_triple(replaced) == (pos[0], Triple("man", "wearing", "cup"))
    run = SimpleNamespace(name="r", prompts={"c1": ("p", "n"), "c2": ("p", "n")}, keys={"c1": (None, None), "c2": (None, None)}, info={})
    collected = RunResult(runs=[run], scores={"r": {}}, metrics={}, timings=Timings(), wall_s=0.0,
                          topology=topology())
    _, rows = sample_rows(SimpleNamespace(cases=[swapped, replaced]), collected)
    assert [(r["predicate"], r["neg_predicate"], r["subject"], r["object"]) for r in rows] == [
        ("on", "on", "cup", "table"), ("holding", "wearing", "man", "cup")]
    assert rows[0]["graph_pos"] == "man holding cup; cup on table"
