"""relbench.stats.agreement against hand-computed Cohen's kappa tables."""

import pytest

from relbench.stats.agreement import Agreement, agreement


def test_binary_table_by_hand():
    # 2x2 table: (1,1)=5, (1,0)=1, (0,1)=1, (0,0)=3 -> p_o = 0.8; both judges say 1 in 6/10,
    # p_e = 0.6*0.6 + 0.4*0.4 = 0.52; kappa = (0.8 - 0.52) / 0.48 = 0.58333...
    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 0, 1, 1, 1, 1, 0, 1]
    r = agreement(a, b, [f"t{i}" for i in range(10)])
    assert isinstance(r, Agreement)
    assert r.n == 10
    assert r.share == pytest.approx(0.8)
    assert r.kappa == pytest.approx(0.28 / 0.48)
    assert r.share_ci[0] <= r.share <= r.share_ci[1]
    assert r.kappa_ci[0] <= r.kappa <= r.kappa_ci[1]
    assert r.share_ci[0] < r.share_ci[1]


def test_tie_is_its_own_category():
    # pairs (.5,.5) (.5,1) (1,1) (0,0): p_o = 3/4; a: 0 .25, .5 .5, 1 .25; b: 0 .25, .5 .25, 1 .5
    # p_e = .0625 + .125 + .125 = .3125; kappa = (.75 - .3125) / .6875
    r = agreement([0.5, 0.5, 1, 0], [0.5, 1, 1, 0], ["a", "b", "c", "d"])
    assert r.share == pytest.approx(0.75)
    assert r.kappa == pytest.approx(0.4375 / 0.6875)


def test_missing_skipped_and_degenerate_cases():
    r = agreement([1, None, 0, 1, float("nan")], [1, 1, None, 0, 1], ["a", "b", "c", "d", "e"])
    assert r.n == 2 and r.share == pytest.approx(0.5)
    # one judge constant, the other not: p_e = p_o -> kappa 0
    r = agreement([1, 1, 1, 1], [1, 0, 1, 0], ["a", "b", "c", "d"])
    assert r.share == pytest.approx(0.5) and r.kappa == pytest.approx(0.0)
    # both constant and equal: kappa undefined, said as None
    r = agreement([1, 1, 1], [1, 1, 1], ["a", "b", "c"])
    assert r.share == 1.0 and r.kappa is None and r.kappa_ci == (None, None)
    r = agreement([None], [1], ["a"])
    assert r == Agreement(0, None, (None, None), None, (None, None))


def test_bootstrap_resamples_clusters_and_is_deterministic():
    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1] * 3
    b = [1, 0, 0, 0, 1, 1, 1, 1, 0, 1] * 3
    one_cluster = agreement(a, b, ["t"] * 30)  # one triple: nothing to resample, interval undefined
    assert one_cluster.share == pytest.approx(24 / 30) and one_cluster.share_ci == (None, None)
    by_triple = agreement(a, b, [f"t{i % 10}" for i in range(30)])
    by_row = agreement(a, b, [f"r{i}" for i in range(30)])
    # rows of a triple move together: the interval is wider than a row-level one
    def width(r):
        return r.share_ci[1] - r.share_ci[0]
    assert width(by_triple) > width(by_row)
    assert agreement(a, b, [f"t{i % 10}" for i in range(30)]) == by_triple


def test_bad_input():
    with pytest.raises(ValueError, match="allowed: 0, 0.5"):
        agreement([0.7], [1], ["a"])
    with pytest.raises(ValueError, match="lengths differ"):
        agreement([1, 0], [1], ["a", "b"])


def test_judge_agreement_pairs_and_scopes():
    from relbench.results.format import format_agreement
    from relbench.stats.agreement import judge_agreement

    rows = []
    # 'left of' is geometric: vlm and spatial agree on 3 of 4 images; 'holding' is not: spatial unused
    for i, (vp, vn, sp, sn, cp, cn) in enumerate([(1, 1, 1, 1, 1, 0), (1, 0, 1, 1, 1, 0)]):
        rows.append({"predicate": "left of", "item_id": f"t{i}", "vlm_pos_acc": vp, "vlm_neg_acc": vn,
                     "pos_uncond": sp, "neg_uncond": sn, "clip_pos_acc": cp, "clip_neg_acc": cn})
    rows.append({"predicate": "holding", "item_id": "t9", "vlm_pos_acc": 0.5, "vlm_neg_acc": 1,
                 "pos_uncond": None, "neg_uncond": None, "clip_pos_acc": 0.5, "clip_neg_acc": 0})
    found = judge_agreement(rows, lambda p: p == "left of", resamples=200)
    assert set(found) == {"vlm~spatial", "vlm~clip"}  # no vlm2 columns in these rows
    vs = found["vlm~spatial"]
    assert vs["predicates"] == "geometric" and set(vs["by_predicate"]) == {"left of"}
    assert vs["overall"]["n"] == 4 and vs["overall"]["share"] == pytest.approx(0.75)
    vc = found["vlm~clip"]["overall"]
    # vlm: 1,1,1,0,.5,1  clip: 1,0,1,0,.5,0 -> agree on 4 of 6
    assert vc["n"] == 6 and vc["share"] == pytest.approx(4 / 6)
    assert found["vlm~clip"]["by_predicate"]["holding"]["share"] == pytest.approx(0.5)
    text = format_agreement({"runs": {"r": {"agreement": found}}})
    # two triples: too few for an interval, which the line says instead of leaving it out
    assert "agreement r vlm~spatial (geometric predicates, 4 images): share 0.75 [–], kappa " in text


def test_estimates_print_as_every_table_does():
    from relbench.results.format import estimate_text, interval_text

    assert estimate_text(0.12345, 0.1, 0.2, 3) == "0.123 [0.1, 0.2]"
    assert estimate_text(0.5, None, None, 3) == "0.5 [–]" and estimate_text(None, 0, 1, missing="undefined") == "undefined"
    assert interval_text({"value": 2 / 3, "ci_low": 0.5, "ci_high": 0.8}) == "0.6667 [0.5, 0.8]"
    assert estimate_text(5e-5, 1e-5, 1e-4) == "5.00e-05 [1.00e-05, 1.00e-04]"

