"""relbench compare: paired tests between runs, tests against records, the gate, the CLI."""

import csv
import itertools
import json
import re

import numpy as np
import pytest
from scipy import stats

from relbench.results.compare import compare, format_comparison, gate
from relbench.results.read import load_run_dir
from relbench.stats.paired import paired_difference
from relbench.errors import UserError
from origin_fixture import case_rows, clip_scores, mse_values, write_run_dir

# --- paired_difference, by hand and against independent implementations ----------------------


def test_identical_runs_differ_by_nothing():
    x = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5] * 4
    cl = [f"t{i // 2}" for i in range(24)]
    d = paired_difference(x, x, cl)
    assert (d["value"], d["ci_low"], d["ci_high"], d["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert d["n"] == 24 and d["n_triples"] == 12
    # three triples: the same difference and p, but too few triples for an interval (stats.MIN_TRIPLES)
    few = paired_difference(x[:6], x[:6], cl[:6])
    assert (few["value"], few["ci_low"], few["ci_high"], few["p_value"], few["n_triples"]) == (0.0, None, None, 1.0, 3)


def test_five_triples_all_improved_exact_p():
    # 5 triples x 2 seeds, every triple's difference is +1: of the 2^5 sign assignments only
    # all-plus and all-minus reach |mean| = 1, so the exact two-sided p is 2/32
    cl = [t for t in "abcde" for _ in range(2)]
    d = paired_difference([0.0] * 10, [1.0] * 10, cl)
    assert d["value"] == 1.0 and d["p_value"] == pytest.approx(2 / 32)
    # every resample has the same difference, but five triples are too few to call that an interval
    assert d["ci_low"] is None and d["ci_high"] is None
    # ten such triples: the exact p is 2/1024 and the interval is the point
    d10 = paired_difference([0.0] * 20, [1.0] * 20, [t for t in "abcdefghij" for _ in range(2)])
    assert d10["p_value"] == pytest.approx(2 / 1024) and d10["ci_low"] == d10["ci_high"] == 1.0


def test_sign_flip_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    cl = np.repeat(np.arange(10), 3)
    xa, xb = rng.random(30), rng.random(30) + 0.2
    ours = paired_difference(xa, xb, cl)
    sums = np.bincount(cl, xb - xa)
    ref = stats.permutation_test((sums,), lambda s, axis: np.sum(s, axis=axis) / 30, permutation_type="samples",
                                 n_resamples=9999, alternative="two-sided")  # 2^10 < 9999: exact
    assert ours["value"] == pytest.approx(np.mean(xb - xa))
    assert ours["p_value"] == pytest.approx(ref.pvalue)
    assert ours["ci_low"] < ours["value"] < ours["ci_high"]


def test_other_statistics_use_label_swaps_within_triples():
    rng = np.random.default_rng(5)
    cl = np.repeat(np.arange(6), 2)
    xa, xb = rng.normal(0, 1, 12), rng.normal(0, 3, 12)
    d = paired_difference(xa, xb, cl, "std")
    # brute force over the 2^6 assignments: swap whole triples between the runs
    null = []
    for swap in itertools.product([False, True], repeat=6):
        s = np.array(swap)[cl]
        null.append(np.std(np.where(s, xa, xb)) - np.std(np.where(s, xb, xa)))
    obs = np.std(xb) - np.std(xa)
    assert d["value"] == pytest.approx(obs)
    assert d["p_value"] == pytest.approx(np.mean(np.abs(null) >= abs(obs) - 1e-12))


def test_bootstrap_keeps_the_pairing():
    # run b = run a + 0.1 on every case: resampling triples together gives a zero-width
    # interval, where unpaired resampling would give a wide one
    rng = np.random.default_rng(0)
    xa = rng.random(300)
    d = paired_difference(xa, xa + 0.1, np.repeat(np.arange(100), 3))
    assert d["ci_low"] == pytest.approx(0.1) and d["ci_high"] == pytest.approx(0.1)
    assert d["p_value"] == pytest.approx(1 / 10000)  # only the observed signs are that extreme


# --- run directories from hand-made scores -----------------------------------------------------

RUNS = {  # clip_alignment_acc = (pos_right + neg_right) / 960
    "seedlike": dict(),  # 0.49375, the seed's scores
    "better": dict(pos_right=360, neg_right=360, pos_margin=0.3, neg_margin=0.3),  # 0.75
    "marginal": dict(pos_right=250, neg_right=250),  # 0.521: better, but not shown to be
    "worse": dict(pos_right=190, neg_right=194),  # 0.40
}


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    dirs = {}
    for name, kw in RUNS.items():
        dirs[name] = write_run_dir(base / name, {name: case_rows(name, clip_scores(**kw), mse_values())}, resamples=500)
    both = {n: case_rows(n, clip_scores(**RUNS[n]), mse_values()) for n in ("seedlike", "better")}
    dirs["both"] = write_run_dir(base / "both", both, resamples=500)
    return dirs


def test_gate_decisions(run_dirs):
    decisions = {}
    for name in RUNS:
        result = compare([load_run_dir(run_dirs[name])], baseline="seed-20ep")
        (g,) = gate(result, "clip_alignment_acc")
        decisions[name] = g["better"]
        if name == "better":
            assert g["p_value"] < 1e-6 and g["difference"] == pytest.approx(0.75 - 0.494)
        if name == "marginal":
            assert 0.05 < g["p_value"] < 0.5  # higher, but within the noise of n = 480
    assert decisions == {"seedlike": False, "better": True, "marginal": False, "worse": False}


def test_compare_cli_tables_and_files(cli, run_dirs, tmp_path):
    res = cli("compare", str(run_dirs["both"]), "--baseline", "seed-20ep", "-o", str(tmp_path / "cmp"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "seed-20ep (n=480)" in out and "seedlike (n=480)" in out and "better (n=480)" in out
    # the record has no SE of its own: its column is the value; each test below estimates it
    assert re.search(r"clip_alignment_acc\s+0\.5\s+0\.494\s+0\.4938 \[", out)
    assert "binomial vs chance (convention: cases taken as independent)" in out
    assert "Paired differences of the headline keys against the first run" in out
    rows = list(csv.DictReader((tmp_path / "cmp.csv").read_text().splitlines()))
    paired = next(r for r in rows if r["section"] == "paired" and r["key"] == "clip_alignment_acc")
    assert (paired["run"], paired["against"]) == ("better", "seedlike")
    assert float(paired["value"]) == pytest.approx(0.75 - 474 / 960)
    assert float(paired["ci_low"]) > 0 and float(paired["p_value"]) < 0.001
    chance = next(r for r in rows if r["section"] == "baseline" and r["key"] == "clip_alignment_acc")
    assert float(chance["p_value"]) == pytest.approx(0.8195, abs=1e-3)
    assert chance["test"] == "binomial vs chance (convention: cases taken as independent)"
    # only headline keys are paired (not clip_pos_correct, mse_std, ...)
    assert {r["key"] for r in rows if r["section"] == "paired"} == {"clip_alignment_acc"}
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert data["baseline"]["name"] == "seed-20ep"
    assert {v["run"] for v in data["versus_baseline"]} == {"seedlike", "better"}


def test_require_better_exit_codes(cli, run_dirs, tmp_path):
    res = cli("compare", str(run_dirs["better"]), "--baseline", "seed-20ep", "--require-better", "clip_alignment_acc",
              "-o", str(tmp_path / "a"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gate: better better than seed-20ep" in res.stdout
    res = cli("compare", str(run_dirs["seedlike"]), "--baseline", "seed-20ep", "--require-better", "clip_alignment_acc",
              "-o", str(tmp_path / "b"))
    assert res.returncode == 1
    assert "NOT better" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such run directory"),
    (["{both}", "--baseline", "seed-99"], "unknown baseline 'seed-99' (known: seed-10ep-quick, seed-20ep)"),
    (["{both}", "--baseline", "seed-20ep", "--require-better", "spatial_pair_acc"],
     "baseline seed-20ep has no 'spatial_pair_acc'"),
    (["{both}", "--baseline", "seed-20ep", "--require-better", "mse_mean"], "'mse_mean' has no better direction"),
    # no record is compared unasked (the fixture's benchmark declares none comparable)
    (["{both}", "--require-better", "clip_alignment_acc"], "--require-better needs a baseline record: --baseline NAME"),
    (["{empty}"], "not a run directory (no summary.json"),
])
def test_bad_input_is_one_line_exit_2(cli, run_dirs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nope", "both": run_dirs["both"], "empty": tmp_path / "empty"}
    res = cli("compare", *[a.format(**paths) for a in args], "-o", str(tmp_path / "x"))
    assert res.returncode == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_key_absent_from_a_run(run_dirs):
    from relbench.results.compare import check_gate_key

    result = compare([load_run_dir(run_dirs["both"])], baseline="seed-20ep")
    result["runs"][0]["metrics"].pop("clip_alignment_acc")
    with pytest.raises(UserError, match="run seedlike has no 'clip_alignment_acc'"):
        check_gate_key(result, "clip_alignment_acc")


# --- the gate's calibration: run and record drawn from the same generator -----------------------


def _null_draws(rng, kind: str, n_sims: int, n_triples: int = 160, n_seeds: int = 3) -> np.ndarray:
    """(n_sims, cases) per-case values of one generator, seeds of a triple correlated.

    margin: a triple effect plus case noise (intraclass correlation 0.5). acc: clip_acc of a
    case, the mean of its two votes, which share the text's bias toward p+ (a triple effect)
    with opposite signs: img_pos wins when bias + noise > 0, img_neg when noise - bias > 0, so
    the two votes are anti-correlated (the binomial SE is about 2.4x the real one)."""
    shared = rng.normal(0, 1, (n_sims, n_triples)).repeat(n_seeds, axis=1)
    noise = rng.normal(0, 1, (n_sims, 2, n_triples * n_seeds))
    if kind == "margin":
        return shared + noise[:, 0]
    return ((noise[:, 0] + 0.5 * shared > 0).astype(float) + (noise[:, 1] - 0.5 * shared > 0)) / 2


@pytest.mark.parametrize("kind, key", [("margin", "clip_pos_margin"), ("acc", "clip_alignment_acc")])
def test_gate_false_positive_rate_is_nominal(kind, key):
    """2000 nulls: the record is the aggregate of an independent draw of the same generator,
    with no standard error published (as the seed records). --require-better must pass about 5%
    of them (a margin with SE 0 passed ~11%, the accuracy with its binomial SE ~0%)."""
    from relbench.stats.records import versus_record
    from relbench.stats.bootstrap import cluster_bootstrap_many

    rng = np.random.default_rng(2024)
    n_sims, n = 2000, 480
    runs, records = _null_draws(rng, kind, n_sims), _null_draws(rng, kind, n_sims).mean(axis=1)
    triples = np.repeat(np.arange(160), 3)
    # every simulated run's bootstrap entry, as summary.json holds it (one shared bootstrap call)
    entries = cluster_bootstrap_many([(x, "mean") for x in runs], triples, n_resamples=500, seed=0)
    kind_of_record = "proportion" if kind == "acc" else "mean"
    rows = [{"key": key, "run": f"sim{i}", **versus_record(e, {"value": float(r), "n": n, "kind": kind_of_record}, True)}
            for i, (e, r) in enumerate(zip(entries, records))]
    fpr = np.mean([g["better"] for g in gate({"versus_baseline": rows}, key)])
    assert 0.03 <= fpr <= 0.07, fpr


# --- what compare reads, shows and writes ------------------------------------------------------


def test_specs_come_from_summary_not_plugins(run_dirs, tmp_path):
    """Paired tests need each aggregate's column and statistic: summary.json holds them, so a
    metric plugin that cannot be imported where compare runs costs nothing (it used to drop the
    paired tests silently)."""
    import shutil

    copy = tmp_path / "elsewhere"
    shutil.copytree(run_dirs["both"], copy)
    (copy / "manifest.json").write_text(json.dumps({"config": {"plugins": ["not_installed_here"]},
                                                    "metrics": {"clip_alignment": {"args": {"model": "?"}}}}))
    spec = json.loads((copy / "summary.json").read_text())["metrics"]["clip_alignment"]["specs"]["clip_alignment_acc"]
    assert spec == {"metric": "clip_alignment", "column": "clip_acc", "statistic": "mean", "chance": 0.5,
                    "chance_column": None, "higher_is_better": True, "headline": True, "requires_detected": []}
    result = compare([load_run_dir(copy)])
    assert [(p["key"], p["run"], p["against"]) for p in result["paired"]] == [("clip_alignment_acc", "better", "seedlike")]


def test_one_reference_column_for_several_dirs(tmp_path):
    ref_rows = case_rows("reference", clip_scores(pos_right=400, neg_right=400), mse_values())
    dirs = [write_run_dir(tmp_path / name, {"reference": ref_rows, name: case_rows(name, clip_scores(), mse_values())},
                          resamples=200) for name in ("a", "b", "c")]
    result = compare([load_run_dir(d) for d in dirs])
    assert [r["label"] for r in result["runs"]] == ["reference", "a", "b", "c"]
    assert result["ceiling"]["run"] == "reference"
    text = format_comparison(result)
    assert text.count("reference (n=480)") == 1


def test_partial_pairing_and_prompt_mode_are_warned(cli, tmp_path):
    rows = case_rows("rel", clip_scores(), mse_values())
    a = write_run_dir(tmp_path / "runs" / "rel", {"rel": rows}, resamples=200)
    # a training evaluation: neutral prompts, 8 triples' worth of the same cases
    b = write_run_dir(tmp_path / "runs" / "eval", {"eval": case_rows("eval", clip_scores(), mse_values())[:24]},
                      resamples=200)
    s = json.loads((b / "summary.json").read_text())
    s["runs"]["eval"]["prompt_mode"] = "neutral"
    (b / "summary.json").write_text(json.dumps(s))
    result = compare([load_run_dir(a), load_run_dir(b)])
    assert result["warnings"] == ["eval pairs with rel on 24 of 480 cases (the paired tests use only these); "
                                  "prompt modes differ (rel: relation, eval: neutral)"]
    assert result["paired"][0]["n"] == 24
    # the CLI prints it, and writes beside the runs (their common parent), not inside the first
    res = cli("compare", str(a), str(b), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WARNING: eval pairs with rel on 24 of 480 cases" in res.stdout
    assert (tmp_path / "runs" / "compare-rel-eval.csv").is_file() and (tmp_path / "runs" / "compare-rel-eval.json").is_file()
    assert not list(a.glob("compare*")) and not list(b.glob("compare*"))


def test_no_record_unless_asked_or_declared(cli, run_dirs, tmp_path):
    """A pinned record is compared only on --baseline or when the benchmark declares itself
    comparable with it (comparable_with, kept in summary.json)."""
    import shutil

    from relbench.results.compare import declared_baselines

    res = cli("compare", str(run_dirs["both"]), "-o", str(tmp_path / "plain"))
    assert res.returncode == 0 and "seed-20ep" not in res.stdout
    copy = tmp_path / "declared"
    shutil.copytree(run_dirs["both"], copy)
    s = json.loads((copy / "summary.json").read_text())
    assert s["comparable_with"] == []
    s["comparable_with"] = ["seed-20ep"]
    (copy / "summary.json").write_text(json.dumps(s))
    assert declared_baselines([load_run_dir(copy)]) == ["seed-20ep"]
    assert declared_baselines([load_run_dir(copy), load_run_dir(run_dirs["better"])]) == []
    res = cli("compare", str(copy), "--require-better", "clip_alignment_acc", "-o", str(tmp_path / "gated"))
    assert res.returncode == 1 and "gate: better better than seed-20ep" in res.stdout
