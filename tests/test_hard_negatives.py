"""Hard negatives (the predicates a run drew instead, from its confusion matrix) and adversarial
ones (the candidate its judge sees most in the generator's own img_pos), on planted run
directories where the right answer is known."""

import csv
import hashlib
import json
from collections import Counter

import pytest

from confusion_fixture import FINGERPRINT, plant_run
from relbench.errors import UserError
from relbench.results.negative_source import load_negative_source
from relbench.spec.config import NegativesSpec
from relbench.spec.data import SuiteItem, Triple
from relbench.spec.negatives import build_cases, negatives_for
from relbench.spec.predicates import load_vocabulary

V = load_vocabulary()


def item(s, p, o, id_="t0"):
    return SuiteItem(id=id_, graph=(Triple(s, p, o),))


def source(tmp_path, kinds=("hard",), **kw):
    planted = {k: kw.pop(k) for k in ("spatial", "vlm", "samples") if k in kw}
    d = plant_run(tmp_path / "src", **planted)
    spec = NegativesSpec(kinds=list(kinds), confusion=str(d), **kw)
    return load_negative_source(spec).checked(V, "test")


LEFT = {"left of": {"left of": 0.5, "above": 0.3, "below": 0.15, "right of": 0.05}}


def test_hard_takes_the_predicate_seen_most_in_place_of_the_asked_one(tmp_path):
    """'left of' is seen most itself, then 'above': the asked predicate is no negative, so
    g- is 'above', never the declared contrast 'right of'."""
    src = source(tmp_path, spatial=LEFT)
    items = [item("a", "left of", "b", f"t{i}") for i in range(20)]
    cases, skipped = build_cases(items, [0, 1], ["hard"], V, "one", 0, src, 1)
    assert skipped == [] and len(cases) == 40
    assert {c.neg for c in cases} == {(Triple("a", "above", "b"),)} and {c.negative_kind for c in cases} == {"hard"}


def test_top_k_draws_among_the_k_most_seen(tmp_path):
    src = source(tmp_path, spatial=LEFT)
    items = [item("a", "left of", "b", f"t{i}") for i in range(40)]
    got = Counter(negatives_for(it, ["hard"], V, 3, src, 2)[0][1][0].predicate for it in items)
    assert set(got) == {"above", "below"}  # the 2 most seen after the asked one; 'right of' is third
    got3 = {negatives_for(it, ["hard"], V, 3, src, 3)[0][1][0].predicate for it in items}
    assert got3 == {"above", "below", "right of"}


def test_ties_are_broken_by_name_whatever_the_file_order(tmp_path):
    a = source(tmp_path / "a", spatial={"left of": {"below": 0.4, "above": 0.4, "left of": 0.2}})
    b = source(tmp_path / "b", spatial={"left of": {"above": 0.4, "left of": 0.2, "below": 0.4}})
    for src in (a, b):
        assert src.ranked("left of", 1) == ["above"]
        assert negatives_for(item("a", "left of", "b"), ["hard"], V, 0, src, 1)[0][1][0].predicate == "above"


def test_hard_is_deterministic_given_the_file_and_the_seed(tmp_path):
    src = source(tmp_path, spatial=LEFT)
    items = [item("a", "left of", "b", f"t{i}") for i in range(30)]
    one = build_cases(items, [0], ["hard"], V, "one", 5, src, 2)[0]
    again = build_cases(list(reversed(items)), [0], ["hard"], V, "one", 5, source(tmp_path / "x", spatial=LEFT), 2)[0]
    assert sorted((c.id, c.neg) for c in one) == sorted((c.id, c.neg) for c in again)
    other = build_cases(items, [0], ["hard"], V, "one", 6, src, 2)[0]
    assert [c.neg for c in other] != [c.neg for c in one]


def test_asked_predicates_never_confused_have_no_hard_negative(tmp_path):
    """A row seeing only the asked predicate, or no row at all: the item is reported as without
    a negative, not silently given a contrast."""
    src = source(tmp_path, spatial={"above": {"above": 1.0, "below": 0.0}})
    cases, skipped = build_cases([item("a", "above", "b", "x"), item("a", "near", "b", "y")], [0], ["hard"], V,
                                 "one", 0, src)
    assert cases == [] and skipped == ["x", "y"]


def test_hard_without_a_run_uses_the_declared_contrasts():
    it = item("a", "on", "b")
    for seed in range(10):
        assert negatives_for(it, ["hard"], V, seed)[0][1] == negatives_for(it, ["replace"], V, seed)[0][1]


def test_aliases_in_the_file_are_read_as_their_predicates(tmp_path):
    src = source(tmp_path, spatial={"to the left of": {"over": 0.6, "under": 0.4}})
    assert src.ranked("left of", 2) == ["above", "below"]


def test_the_vlm_judge_row_is_read_when_asked(tmp_path):
    src = source(tmp_path, spatial=LEFT, vlm={"left of": {"right of": 0.7, "above": 0.3}}, judge="vlm_judge")
    assert src.ranked("left of", 1) == ["right of"]
    assert src.identity["judge"] == "vlm_judge"


def test_identity_names_the_file_and_the_run(tmp_path):
    src = source(tmp_path, spatial=LEFT)
    d = tmp_path / "src"
    assert src.identity == {"run_dir": str(d), "run": "gen", "judge": "spatial", "fingerprint": FINGERPRINT,
                            "summary_sha256": hashlib.sha256((d / "summary.json").read_bytes()).hexdigest()}


def _row(item_id, neg, **cols):
    return {"case_id": f"{item_id}-{neg.replace(' ', '_')}", "item_id": item_id, "graph_neg": neg, **cols}


def test_adversarial_vlm_picks_the_candidate_the_judge_scores_highest_in_img_pos(tmp_path):
    """Candidates of 'a left of b': the swap and the contrast 'right of'; the judge said yes to
    'a right of b' more often (mean over seeds 0.8) than to 'b left of a' (0.35)."""
    samples = [_row("t0", "b left of a", vlm_pos_wrong=0.3), _row("t0", "b left of a", vlm_pos_wrong=0.4),
               _row("t0", "a right of b", vlm_pos_wrong=0.9), _row("t0", "a right of b", vlm_pos_wrong=0.7),
               _row("t1", "b left of a", vlm_pos_wrong=0.6), _row("t1", "a right of b", vlm_pos_wrong=0.2)]
    src = source(tmp_path, ["adversarial"], samples=samples, judge="vlm_judge")
    cases, skipped = build_cases([item("a", "left of", "b", "t0"), item("a", "left of", "b", "t1"),
                                  item("a", "left of", "b", "t2")], [0], ["adversarial"], V, "one", 0, src)
    negs = {c.item_id: c.neg[0].text() for c in cases}
    assert negs == {"t0": "a right of b", "t1": "b left of a"} and skipped == ["t2"]  # t2 is not in that run
    assert {c.negative_kind for c in cases} == {"adversarial"}


def test_adversarial_spatial_judges_img_pos_boxes_for_each_candidate(tmp_path):
    """The generator drew a above b in t0 (boxes): of 'a left of b''s candidates (swap, 'right
    of', hard 'above'), only 'a above b' holds. In t1 it drew b left of a: the swap holds."""
    above = json.dumps({"a": [40, 0, 60, 20, 1.0], "b": [40, 70, 60, 90, 1.0]})
    b_left = json.dumps({"a": [70, 40, 90, 60, 1.0], "b": [0, 40, 20, 60, 1.0]})
    samples = [_row("t0", "b left of a", pos_boxes=above, image_pos="k0"),
               _row("t1", "b left of a", pos_boxes=b_left, image_pos="k1")]
    src = source(tmp_path, ["adversarial", "hard"], samples=samples, spatial=LEFT)
    got = {c.item_id: c.neg[0].text() for c in build_cases(
        [item("a", "left of", "b", "t0"), item("a", "left of", "b", "t1")], [0], ["adversarial"], V, "one", 0, src, 1)[0]}
    assert got == {"t0": "a above b", "t1": "b left of a"}


def test_validation_of_the_source(tmp_path):
    d = plant_run(tmp_path / "src", spatial=LEFT)
    with pytest.raises(UserError, match=r"negatives.confusion: .*missing: no such run directory"):
        load_negative_source(NegativesSpec(kinds=["hard"], confusion=str(tmp_path / "missing")))
    with pytest.raises(UserError, match=r"run 'gen' has no confusion matrix from judge 'vlm_judge' .*judges there: spatial"):
        load_negative_source(NegativesSpec(kinds=["hard"], confusion=str(d), judge="vlm_judge"))
    with pytest.raises(UserError, match=r"negatives.run: 'other' is no run of .* \(runs: reference, gen\)"):
        load_negative_source(NegativesSpec(kinds=["hard"], confusion=str(d), run="other"))
    with pytest.raises(UserError, match=r"^test: .*'levitating'"):
        source(tmp_path / "u", spatial={"left of": {"levitating": 1.0}})
    with pytest.raises(UserError, match=r"^test: row 'left of' names predicate 'above' twice"):
        source(tmp_path / "twice", spatial={"left of": {"over": 0.5, "above": 0.1}})


HARD_CONFIG = """\
name: hard
suite: {{kind: shapes, triples_per_predicate: 2}}
seeds: [0, 1]
negatives: {negatives}
metrics: [pair_mse]
runs:
  - {{name: oracle, generator: shapes_oracle}}
output_dir: {out}
chunk_size: 8
batch_size: 4
"""


def _config(tmp_path, negatives, out="out"):
    p = tmp_path / "bench.yaml"
    p.write_text(HARD_CONFIG.format(negatives=negatives, out=tmp_path / out))
    return p


def test_a_run_with_hard_negatives_records_its_source(cli, tmp_path):
    d = plant_run(tmp_path / "src", spatial={"left of": {"above": 0.6, "right of": 0.4},
                                             "above": {"above": 0.2, "left of": 0.8}})
    res = cli("run", "--config", str(_config(tmp_path, f"{{kinds: [hard], confusion: {d}, top_k: 1}}")))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    rows = [r for r in csv.DictReader((out / "samples.csv").open()) if r["run"] == "oracle"]
    assert {(r["predicate"], r["neg_predicate"]) for r in rows} == {("left of", "above"), ("above", "left of")}
    assert {r["negative_kind"] for r in rows} == {"hard"} and len(rows) == 2 * 2 * 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["negative_source"] == {
        "run_dir": str(d), "run": "gen", "judge": "spatial", "fingerprint": FINGERPRINT,
        "summary_sha256": hashlib.sha256((d / "summary.json").read_bytes()).hexdigest()}
    assert len(manifest["items_without_negative"]) == 7 * 2  # the predicates the file has no confused row for
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["runs"]["oracle"]["by_negative_kind"]) == {"hard"}


def _inverse_spatial_run(cli, tmp_path, negatives: str) -> None:
    """The source run: the inverse generator judged by spatial on the shapes world, in tmp_path/src."""
    first = tmp_path / "first.yaml"
    first.write_text(HARD_CONFIG.format(negatives=negatives, out=tmp_path / "src")
                     .replace("shapes_oracle", "shapes_inverse").replace("name: oracle", "name: inverse")
                     .replace("metrics: [pair_mse]", "metrics: [{name: spatial, args: {detector: shapes}}]")
                     .replace("seeds: [0, 1]", "seeds: [0]\nreference_run: false"))
    assert cli("run", "--config", str(first)).returncode == 0


@pytest.mark.slow  # two benchmark runs (~5 s)
def test_adversarial_from_a_real_spatial_run(cli, tmp_path):
    """An inverse generator draws 'a right of b' for 'a left of b': its boxes satisfy both the
    swap and the contrast, and the swap, first of equal candidates, is chosen."""
    _inverse_spatial_run(cli, tmp_path, "{kinds: [swap, replace], per_item: all}")
    res = cli("run", "--config", str(_config(tmp_path, f"{{kinds: [adversarial], confusion: {tmp_path / 'src'}}}")))
    assert res.returncode == 0, res.stderr
    rows = [r for r in csv.DictReader((tmp_path / "out" / "samples.csv").open()) if r["run"] == "oracle"]
    directional = [r for r in rows if r["predicate"] in ("left of", "right of", "above", "below")]
    assert len(directional) == 4 * 2 * 2
    for r in directional:
        assert r["negative_kind"] == "adversarial"
        assert r["graph_neg"] == f"{r['object']} {r['predicate']} {r['subject']}"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["runs"]["oracle"]["by_negative_kind"]) == {"adversarial"}


@pytest.mark.slow  # two benchmark runs (~5 s)
def test_hard_negatives_from_a_real_runs_confusion_are_what_it_drew_instead(cli, tmp_path):
    """End to end with the confusion matrix a run writes (no planted file): the inverse generator
    draws 'b above a' for 'a above b', so its boxes show 'below' where 'above' was asked, and
    the hard negative of 'above' is 'below' (each by the documented rule on the rows written)."""
    _inverse_spatial_run(cli, tmp_path, "{kinds: [swap]}")
    rows = json.loads((tmp_path / "src" / "summary.json").read_text())["runs"]["inverse"]["confusion"]["spatial"]["rows"]
    assert rows["above"]["seen"]["below"] == 1.0 and rows["above"]["seen"]["above"] == 0.0
    res = cli("run", "--config", str(_config(tmp_path, f"{{kinds: [hard], confusion: {tmp_path / 'src'}}}")))
    assert res.returncode == 0, res.stderr
    got = {(r["predicate"], r["neg_predicate"]) for r in csv.DictReader((tmp_path / "out" / "samples.csv").open())
           if r["run"] == "oracle" and r["predicate"] in ("left of", "right of", "above", "below")}
    # the documented rule on the written rows: the most seen other predicate, equal shares by name
    # (in this small world "near" holds as often as the inverse for left of / right of)
    expected = {(a, min((p for p in row["seen"] if p != a), key=lambda p: (-row["seen"][p], p)))
                for a, row in rows.items() if a in ("left of", "right of", "above", "below")}
    assert got == expected and {("above", "below"), ("below", "above")} <= got


@pytest.mark.parametrize("negatives, message", [
    ("{kinds: [hard], confusion: NOWHERE}", r"bench.yaml:4: negatives.confusion: .*nowhere: no such run directory"),
    ("{kinds: [hard], confusion: SRC, judge: clip}", r"bench.yaml:4: negatives.judge: got 'clip'; allowed: 'spatial' or 'vlm_judge'"),
    ("{kinds: [hard], confusion: SRC, judge: vlm_judge}", r"bench.yaml:4: negatives.confusion: .*has no confusion matrix from judge 'vlm_judge'"),
    ("{kinds: [adversarial]}", r"negatives: kind adversarial needs confusion: RUN_DIR"),
    ("{kinds: [swap], confusion: SRC}", r"negatives: confusion: is read only by kinds hard and adversarial"),
])
def test_bad_sources_are_one_line_before_anything_runs(cli, tmp_path, negatives, message):
    import re

    d = plant_run(tmp_path / "src", spatial=LEFT)
    negatives = negatives.replace("NOWHERE", str(tmp_path / "nowhere")).replace("SRC", str(d))
    res = cli("run", "--config", str(_config(tmp_path, negatives)))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not (tmp_path / "out").exists()
