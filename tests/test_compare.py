"""relbench compare: paired tests between runs, tests against records, the gate, the CLI."""

import csv
import itertools
import json

import numpy as np
import pytest
from scipy import stats

from relbench.compare import compare, gate, load_run_dir, paired_difference
from relbench.errors import UserError
from seed_fixture import case_rows, clip_scores, mse_values, write_run_dir

# --- paired_difference, by hand and against independent implementations ----------------------


def test_identical_runs_differ_by_nothing():
    x = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5]
    d = paired_difference(x, x, ["a", "a", "b", "b", "c", "c"])
    assert (d["value"], d["ci_low"], d["ci_high"], d["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert d["n"] == 6 and d["n_triples"] == 3


def test_five_triples_all_improved_exact_p():
    # 5 triples x 2 seeds, every triple's difference is +1: of the 2^5 sign assignments only
    # all-plus and all-minus reach |mean| = 1, so the exact two-sided p is 2/32
    cl = [t for t in "abcde" for _ in range(2)]
    d = paired_difference([0.0] * 10, [1.0] * 10, cl)
    assert d["value"] == 1.0 and d["p_value"] == pytest.approx(2 / 32)
    assert d["ci_low"] == d["ci_high"] == 1.0  # every resample has the same difference


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
    assert "0.494 ±0.045" in out  # the record's binomial interval, 1.96 x 0.0228
    assert "Paired differences against the first run" in out
    rows = list(csv.DictReader((tmp_path / "cmp.csv").read_text().splitlines()))
    paired = next(r for r in rows if r["section"] == "paired" and r["key"] == "clip_alignment_acc")
    assert (paired["run"], paired["against"]) == ("better", "seedlike")
    assert float(paired["value"]) == pytest.approx(0.75 - 474 / 960)
    assert float(paired["ci_low"]) > 0 and float(paired["p_value"]) < 0.001
    chance = next(r for r in rows if r["section"] == "baseline" and r["key"] == "clip_alignment_acc")
    assert float(chance["p_value"]) == pytest.approx(0.8195, abs=1e-3)
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert data["baseline"]["name"] == "seed-20ep"
    assert {v["run"] for v in data["versus_baseline"]} == {"seedlike", "better"}


def test_require_better_exit_codes(cli, run_dirs, tmp_path):
    res = cli("compare", str(run_dirs["better"]), "--baseline", "seed-20ep", "--require-better", "clip_alignment_acc",
              "-o", str(tmp_path / "a"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gate: better better than seed-20ep" in res.stdout
    res = cli("compare", str(run_dirs["seedlike"]), "--require-better", "clip_alignment_acc", "-o", str(tmp_path / "b"))
    assert res.returncode == 1  # the baseline defaults to seed-20ep
    assert "NOT better" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such run directory"),
    (["{both}", "--baseline", "seed-99"], "unknown baseline 'seed-99' (known: seed-10ep-quick, seed-20ep)"),
    (["{both}", "--require-better", "spatial_pair_acc"], "baseline seed-20ep has no 'spatial_pair_acc'"),
    (["{both}", "--require-better", "mse_mean"], "'mse_mean' has no better direction"),
    (["{empty}"], "not a run directory (no summary.json"),
])
def test_bad_input_is_one_line_exit_2(cli, run_dirs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nope", "both": run_dirs["both"], "empty": tmp_path / "empty"}
    res = cli("compare", *[a.format(**paths) for a in args], "-o", str(tmp_path / "x"))
    assert res.returncode == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_key_absent_from_a_run(run_dirs):
    from relbench.compare import check_gate_key

    result = compare([load_run_dir(run_dirs["both"])], baseline="seed-20ep")
    result["runs"][0]["metrics"].pop("clip_alignment_acc")
    with pytest.raises(UserError, match="run seedlike has no 'clip_alignment_acc'"):
        check_gate_key(result, "clip_alignment_acc")
