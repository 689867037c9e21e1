"""The pinned seed baseline: record values, aggregation of the seed's keys, chance, the gate."""

import math

import pytest

from relbench import baselines
from relbench.stats.records import chance_test, record_se, versus_record
from relbench.errors import UserError
from origin_fixture import case_rows, clip_scores, mse_values, summarise_rows

SEED_20EP = {"clip_alignment_acc": 0.494, "clip_pos_margin": -0.022, "clip_neg_margin": 0.059,
             "clip_pos_correct": 12.97, "clip_pos_wrong": 12.99, "mse_mean": 8613.70, "mse_std": 5267.92}


def test_records_are_pinned():
    assert baselines.known() == ["seed-10ep-quick", "seed-20ep"]
    rec = baselines.load("seed-20ep")
    assert {k: v["value"] for k, v in rec["metrics"].items()} == SEED_20EP
    assert rec["n_cases"] == 480 and rec["n_triples"] == 160 and rec["seeds"] == [0, 1, 2]
    assert all(v["n"] == 480 for v in rec["metrics"].values())
    assert rec["assumed"] == {}
    quick = baselines.load("seed-10ep-quick")
    assert {k: v["value"] for k, v in quick["metrics"].items()} == {
        "clip_alignment_acc": 0.60, "clip_pos_margin": 1.01, "mse_mean": 6460.0}
    assert quick["n_cases"] == 10
    # every key of the quick record is a reading of a loosely named figure: each says so
    assert set(quick["assumed"]) == set(quick["metrics"])


def test_unknown_record_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown baseline 'seed-30ep' \(known: seed-10ep-quick, seed-20ep\)"):
        baselines.load("seed-30ep")


def test_record_standard_errors():
    """No shipped record publishes an SE: each is estimated from the run's own cluster-bootstrap
    SE, scaled to the record's n (not 0, not the iid binomial)."""
    rec = baselines.load("seed-20ep")["metrics"]
    se_run = 0.1 / (2 * 1.959963984540054)
    run = {"value": 0.6, "ci_low": 0.55, "ci_high": 0.65, "n": 120}
    assert record_se(rec["clip_pos_margin"]) == (None, "unknown")  # nothing to scale without a run
    se, basis = record_se(rec["clip_pos_margin"], run)
    assert se == pytest.approx(se_run * math.sqrt(120 / 480)) and basis.startswith("run's bootstrap SE")
    assert record_se(rec["clip_alignment_acc"], run)[0] == pytest.approx(se_run / 2)  # not sqrt(.494 .506 / 480)
    assert record_se(baselines.load("seed-10ep-quick")["metrics"]["mse_mean"], run)[0] == pytest.approx(
        se_run * math.sqrt(120 / 10))
    assert record_se({"value": 1.0, "n": 10, "se": 0.25}, run) == (0.25, "published")
    assert record_se(rec["clip_pos_margin"], {"value": 0.1, "ci_low": None, "ci_high": None, "n": 5})[0] is None


@pytest.fixture(scope="module")
def origin_summary(tmp_path_factory):
    rows = case_rows("seed", clip_scores(), mse_values())
    return summarise_rows({"seed": rows}, tmp_path_factory.mktemp("agg"))["runs"]["seed"]


def test_aggregation_reproduces_the_origin_keys(origin_summary):
    """Per-sample scores -> metrics' Aggregate specs -> relbench.stats.bootstrap gives the seed's numbers
    (to the digits the seed printed)."""
    m = origin_summary["metrics"]
    assert m["clip_alignment_acc"]["value"] == pytest.approx(474 / 960)  # 0.49375
    assert round(m["clip_alignment_acc"]["value"], 3) == pytest.approx(0.494)
    for key in ("clip_pos_margin", "clip_neg_margin", "clip_pos_correct", "mse_mean", "mse_std"):
        assert m[key]["value"] == pytest.approx(SEED_20EP[key], abs=1e-6), key
    assert round(m["clip_pos_wrong"]["value"], 2) == 12.99  # 12.97 + 0.022
    # the seed's own observation: the wrong prompt scores higher on img_pos
    assert m["clip_pos_wrong"]["value"] > m["clip_pos_correct"]["value"]
    for key in SEED_20EP:
        assert m[key]["n"] == 480 and m[key]["ci_low"] <= m[key]["value"] <= m[key]["ci_high"]
    assert m["clip_alignment_acc"]["chance"] == 0.5
    # at n=480 the accuracy's interval (over 160 triples) contains chance
    assert m["clip_alignment_acc"]["ci_low"] < 0.5 < m["clip_alignment_acc"]["ci_high"]


def test_seed_accuracies_are_indistinguishable_from_chance():
    # 0.494 x 480 = 237 of 480: binomial two-sided p = 0.82; 6 of 10: p = 0.754
    assert chance_test(0.494, 480) == pytest.approx(0.8195, abs=1e-3)
    assert chance_test(0.60, 10) == pytest.approx(0.7539, abs=1e-3)
    # ... while a real effect of the same size as the quick test's would show at n=480
    assert chance_test(0.60, 480) < 1e-4


def test_versus_record_arithmetic():
    rec = baselines.load("seed-20ep")["metrics"]["clip_alignment_acc"]
    run = {"value": 0.60, "ci_low": 0.55, "ci_high": 0.65, "n": 480}  # bootstrap SE 0.1 / 3.92 = 0.0255
    d = versus_record(run, rec, True)
    se = math.sqrt(2) * 0.1 / (2 * 1.959963984540054)  # the record's SE estimated as the run's (same n)
    assert d["value"] == pytest.approx(0.106) and d["se"] == pytest.approx(se)
    assert d["z"] == pytest.approx(0.106 / se)  # 2.94
    assert d["p_value"] == pytest.approx(0.5 * math.erfc(0.106 / se / math.sqrt(2)))
    assert d["ci_low"] == pytest.approx(0.106 - 1.959963984540054 * se)
    assert versus_record(run, rec, False)["p_value"] == pytest.approx(1 - d["p_value"])
    assert versus_record(run, rec, None)["p_value"] == pytest.approx(2 * d["p_value"])
    # both without spread (a run with a zero-width interval): the difference is certain
    fixed = {"value": 1.0, "n": 10, "kind": "mean"}
    assert versus_record({"value": 1.2, "ci_low": 1.2, "ci_high": 1.2, "n": 10}, fixed, True)["p_value"] == 0.0
    assert versus_record({"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 10}, fixed, True)["p_value"] == 1.0
    # no SE anywhere (an undefined run interval): no test, not a certain difference
    undefined = versus_record({"value": 1.2, "ci_low": None, "ci_high": None, "n": 2}, fixed, True)
    assert undefined["p_value"] is None and undefined["ci_low"] is None


def test_a_benchmark_declares_the_records_it_is_comparable_with(tmp_path):
    from relbench.spec.config import parse_benchmark

    base = {"runs": [{"name": "a", "generator": "shapes_oracle"}]}
    assert parse_benchmark(base, "b.yaml", {}).comparable_with == []
    assert parse_benchmark({**base, "comparable_with": ["seed-20ep"]}, "b.yaml", {}).comparable_with == ["seed-20ep"]
    with pytest.raises(UserError, match=r"unknown baseline record 'seed-99' \(known: seed-10ep-quick, seed-20ep\)"):
        parse_benchmark({**base, "comparable_with": ["seed-99"]}, "b.yaml", {})
