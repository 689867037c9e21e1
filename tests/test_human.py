"""The human judge and the meta-evaluation against hand-computed values."""

import json
import shutil

import pytest

from annotate_helpers import fresh_copy, make_shapes_run
from conftest import run_cli
from relbench.annotate.plan import build_plan
from relbench.results.answers import Answer, Undo, answer_for, answers_path, append_event
from relbench.results.read import load_run_dir
from relbench.results.human import Judgment, _aggregates, _annotators, format_human, inter_annotator, judges_vs_humans, majority


def J(annotator, image, triple, score, side="pos", predicate="above", kind="swap"):
    return Judgment(annotator, ("gen", image, side, f"k-{image}-{side}"), triple, predicate, kind, score)


# img1 (t1, pos): a 1, b 1 | img2 (t1, neg): a 0, b can't tell | img3 (t2, pos): a can't tell, b 1
TABLE = [J("a", "c1", "t1", 1.0), J("b", "c1", "t1", 1.0),
         J("a", "c2", "t1", 0.0, side="neg"), J("b", "c2", "t1", 0.5, side="neg"),
         J("a", "c3", "t2", 0.5), J("b", "c3", "t2", 1.0)]


def test_human_aggregates_by_hand():
    agg = _aggregates(TABLE, resamples=500, seed=0)
    assert agg["human_acc"]["value"] == pytest.approx(4 / 6)  # (1+1+0+.5+.5+1)/6
    assert agg["human_pos_acc"]["value"] == pytest.approx(3.5 / 4)
    assert agg["human_neg_acc"]["value"] == pytest.approx(0.25)
    assert agg["human_cant_tell"]["value"] == pytest.approx(2 / 6)
    # majorities: c1 -> 1; c2 {0, can't tell} tie -> 0.5; c3 {can't tell, 1} tie -> 0.5
    assert agg["human_majority_acc"]["value"] == pytest.approx(2 / 3) and agg["human_majority_acc"]["n"] == 3
    for k in ("human_acc", "human_pos_acc", "human_majority_acc"):
        e = agg[k]
        # two triples: too few for an interval (relbench.stats.bootstrap.MIN_TRIPLES)
        assert e["chance"] == 0.5 and e["metric"] == "human" and e["ci_low"] is None and e["ci_high"] is None
    assert agg["human_cant_tell"]["chance"] is None
    # the same judgments on ten copies of each triple: the same values, intervals around them,
    # resampling triples (t1's copies give 2.5/4 = 0.625, t2's 0.75: no resample leaves that span)
    many = [J(j.annotator, f"{j.image[1]}-{r}", f"{j.item_id}-{r}", j.score, side=j.image[2]) for r in range(10) for j in TABLE]
    agg10 = _aggregates(many, resamples=500, seed=0)
    e = agg10["human_acc"]
    assert e["value"] == pytest.approx(4 / 6) and 0.625 <= e["ci_low"] < e["value"] < e["ci_high"] <= 0.75


def test_majority_rule():
    assert majority([1.0, 1.0, 0.0]) == 1.0
    assert majority([1.0, 0.0]) == 0.5
    assert majority([0.5, 0.5, 1.0]) == 0.5  # most people could not tell
    assert majority([0.0]) == 0.0


def test_krippendorff_alpha_by_hand():
    # coders a = [1,1,0,0], b = [1,0,0,0]: o00 = 4, o11 = 2, o01 = o10 = 1, n0 = 5, n1 = 3, n = 8;
    # D_o = 2/8, D_e = 2*5*3/(8*7) = 30/56, alpha = 1 - (1/4)/(30/56) = 8/15
    a, b = [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]
    js = [J("a", f"c{i}", f"t{i}", v) for i, v in enumerate(a)] + [J("b", f"c{i}", f"t{i}", v) for i, v in enumerate(b)]
    js.append(J("b", "c9", "t9", 0.5))  # can't tell is no rating, and c9 has one rater only
    ia = inter_annotator(js, resamples=200)
    assert ia["value"] == pytest.approx(8 / 15) and ia["items"] == 4 and ia["annotators"] == 2
    assert ia["ci_low"] <= ia["value"] <= ia["ci_high"]
    assert inter_annotator([j for j in js if j.annotator == "a"])["value"] is None  # one annotator: undefined


def test_judge_against_human_majority_by_hand():
    # majorities: c1 1, c2 0.5, c3 0.5. Judge: c1 1 (agree), c2 0 (vs undecided: disagree), c3 tie (agree)
    rows = [{"run": "gen", "case_id": "c1", "vp": 1.0, "vn": None}, {"run": "gen", "case_id": "c2", "vp": None, "vn": 0.0},
            {"run": "gen", "case_id": "c3", "vp": 0.5, "vn": None}]
    out = judges_vs_humans(TABLE, rows, {"j": {"metric": "m", "pos": "vp", "neg": "vn"}}, resamples=200, seed=0)
    o = out["j"]["overall"]
    # share 2/3; kappa: judge marginals (1/3, 1/3, 1/3) over (0, 0.5, 1), humans (0, 2/3, 1/3):
    # p_e = 1/3*2/3 + 1/3*1/3 = 1/3, kappa = (2/3 - 1/3) / (1 - 1/3) = 1/2
    assert o["n"] == 3 and o["share"] == pytest.approx(2 / 3) and o["kappa"] == pytest.approx(0.5)
    assert set(out["j"]["by_predicate"]) == {"above"}


def _answer(annotator, item, kind, answer, side="pos", copy_of=None):
    choice = {"pos": 1, "neg": 2, "cant_tell": 0}[answer]
    return Answer(annotator=annotator, plan="p", item=item, kind=kind, copy_of=copy_of, run="r", case_id="c",
                  item_id="t", predicate="on", negative_kind="swap", side=side, image_key="k", order=("pos", "neg"),
                  choice=choice, answer=answer, time="t")


def test_attention_and_consistency_by_hand():
    answers = [_answer("a", "r1", "reference", "pos"), _answer("a", "r2", "reference", "neg"),
               _answer("a", "r3", "reference", "cant_tell"), _answer("a", "m1", "main", "pos"),
               _answer("a", "m1r", "repeat", "pos", copy_of="m1"), _answer("a", "m2", "main", "neg"),
               _answer("a", "m2r", "repeat", "cant_tell", copy_of="m2")]
    a = _annotators(answers)["a"]
    assert a["attention"] == {"n": 3, "accuracy": pytest.approx(0.5)}  # (1 + 0 + 0.5) / 3
    assert a["consistency"] == {"n": 2, "same": 0.5}
    assert a["answers"] == 7 and a["cant_tell"] == pytest.approx(2 / 7)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_shapes_run(tmp_path_factory.mktemp("human"))


def _files(d):
    """(inode, mtime) of every file: a replaced file (atomic write) gets a new inode."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_human_judge_is_computed_on_read_and_never_written(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=40)  # 9 references (one per triple), 4 repeats: every (run, predicate) in the rest
    truth = {"oracle": True, "reference": True, "inverse": False}  # does the image show its own graph?
    for name in ("a", "b"):
        for it in plan.items:
            right = it.side if truth[it.run] else ("neg" if it.side == "pos" else "pos")
            append_event(answers_path(d, name), answer_for(plan, it, name, 1 if it.order[0] == right else 2))
    written = _files(d)
    s = load_run_dir(d).summary
    human = s["human"]
    assert s["runs"]["oracle"]["metrics"]["human_acc"]["value"] == 1.0
    assert s["runs"]["inverse"]["metrics"]["human_acc"]["value"] == 0.0
    assert s["human"]["ceiling"]["value"] == 1.0 and s["human"]["ceiling"]["run"] == "reference"
    assert "human_acc" in next(iter(s["runs"]["oracle"]["by_predicate"].values()))
    assert "human_acc" in next(iter(s["runs"]["oracle"]["by_negative_kind"].values()))
    # truthful people agree with each other and with the exact spatial judge on every image
    assert human["inter_annotator"]["value"] == 1.0
    spatial = human["judges"]["spatial"]
    assert spatial["metric"] == "spatial" and spatial["columns"] == ["pos_uncond", "neg_uncond"]
    assert spatial["overall"]["share"] == 1.0 and spatial["overall"]["kappa"] == 1.0
    assert spatial["overall"]["n"] == human["n_images"] == sum(it.kind != "repeat" for it in plan.items)
    assert human["annotators"]["a"]["consistency"]["same"] == 1.0
    assert "Krippendorff" in format_human(human) and "spatial" in format_human(human)
    # the front ends read it: compare prints and writes it, the report has its section, the
    # notebook API has its rows; none of them writes into the run directory
    res = run_cli("compare", str(d), "-o", str(tmp_path / "cmp"))
    assert res.returncode == 0, res.stderr
    assert "Krippendorff's alpha (nominal): 1 " in res.stdout and "human_acc" in res.stdout
    assert json.loads((tmp_path / "cmp.json").read_text())["human"][str(d)] == human
    res = run_cli("report", str(d), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "r.html").read_text()
    assert '<section id="human">' in html and "human_majority_acc" in html
    assert '<a href="#human">Human judgments</a>' in html  # the nav leads there
    # human_acc stands in "Is the relation drawn?" beside the judges, with its n and the human ceiling
    answer = html.split('<section id="answer">')[1].split("</section>")[0]
    panel = answer.split('<div class="answer-key" data-key="human_acc">')[1]
    n = {r: s["runs"][r]["metrics"]["human_acc"]["n"] for r in ("oracle", "reference")}
    assert f"<td>oracle (n={n['oracle']})</td>" in panel and f"<td>ceiling (reference, n={n['reference']})</td>" in panel
    assert "<svg" in panel.split("</figure>")[0]
    res = run_cli("annotate", str(d), "--summarize")
    assert res.returncode == 0 and format_human(human) in res.stdout
    from relbench.api import load_run

    frames = load_run(d)
    assert frames.raw["human"] == human and "human_acc" in set(frames.summary["metric"])
    assert _files(d) == written
    assert "human" not in json.loads((d / "summary.json").read_text())
    # a rerun of `relbench run` leaves the human judge to the reader
    res = run_cli("run", "--config", str(run_dir.parent / "bench.yaml"), "--out", str(d), "--no-report")
    assert res.returncode == 0, res.stderr
    assert load_run_dir(d).summary["human"] == human
    # an undo changes the numbers
    first = next(it for it in plan.items if it.run == "inverse" and it.kind == "main")
    append_event(answers_path(d, "b"), Undo(annotator="b", item=first.id, time="t"))
    assert load_run_dir(d).summary["human"]["n_answers"] == human["n_answers"] - 1
    # all answers gone: no human parts; a stale section an older relbench wrote is not shown
    shutil.rmtree(d / "human")
    (d / "human").mkdir()
    stale = json.loads((d / "summary.json").read_text())
    stale["human"] = human
    stale["runs"]["oracle"]["metrics"]["human_acc"] = s["runs"]["oracle"]["metrics"]["human_acc"]
    (d / "summary.json").write_text(json.dumps(stale))
    s = load_run_dir(d).summary
    assert "human" not in s and "human_acc" not in s["runs"]["oracle"]["metrics"]


def test_judges_found_by_their_per_image_verdicts():
    from relbench.results.human import judge_columns
    from relbench.plugin.metric import Aggregate

    specs = {a.key: a for a in [
        Aggregate("clip_alignment_acc", "clip_acc"), Aggregate("clip_pos_acc", "clip_pos_acc"),
        Aggregate("clip_neg_acc", "clip_neg_acc"), Aggregate("spatial_pos_acc", "pos_uncond"),
        Aggregate("spatial_neg_acc", "neg_uncond"), Aggregate("spatial_pos_acc_given_detected", "pos_correct"),
        Aggregate("spatial_visor_pos_acc", "visor_pos_uncond"), Aggregate("spatial_visor_neg_acc", "visor_neg_uncond"),
        Aggregate("vlm2_pos_acc", "vlm2_pos_acc"), Aggregate("vlm2_neg_acc", "vlm2_neg_acc"),
        Aggregate("lonely_pos_acc", "x"), Aggregate("human_pos_acc", "h"), Aggregate("human_neg_acc", "h"),
    ]}
    summary = {"runs": {"g": {"metrics": {"clip_pos_acc": {"metric": "clip_alignment"}, "vlm2_pos_acc": {"metric": "vlm_judge"}}}}}
    found = judge_columns(specs, summary)
    assert found == {
        "clip": {"metric": "clip_alignment", "pos": "clip_pos_acc", "neg": "clip_neg_acc"},
        "spatial": {"metric": None, "pos": "pos_uncond", "neg": "neg_uncond"},
        "spatial_visor": {"metric": None, "pos": "visor_pos_uncond", "neg": "visor_neg_uncond"},
        "vlm2": {"metric": "vlm_judge", "pos": "vlm2_pos_acc", "neg": "vlm2_neg_acc"},
    }


def test_an_answer_stored_twice_counts_once(run_dir, tmp_path):
    """An import beside a running server (or two servers of one name) stored two answers of one
    annotator to one item: the latest stands, and an undo after it leaves the item open."""
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=20)
    it = next(x for x in plan.items if x.kind == "main" and x.run == "oracle")
    right = 1 if it.order[0] == it.side else 2
    path = answers_path(d, "a")
    append_event(path, answer_for(plan, it, "a", 3 - right, source="server"))  # wrong, then right
    append_event(path, answer_for(plan, it, "a", right, source="import:feed"))
    s = load_run_dir(d).summary
    assert s["human"]["n_answers"] == 1 and s["human"]["annotators"]["a"]["answers"] == 1
    assert s["runs"]["oracle"]["metrics"]["human_acc"]["value"] == 1.0  # the latest answer, once (not 0.5)
    append_event(path, Undo(annotator="a", item=it.id, time="t"))
    assert "human" not in load_run_dir(d).summary  # nothing stands: the earlier answer does not come back


def test_a_ceiling_without_interval_says_why(run_dir, tmp_path):
    """This suite's reference run has 9 triples: one fewer than an interval needs."""
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=40)
    for it in plan.items:
        if it.kind == "reference":
            append_event(answers_path(d, "a"), answer_for(plan, it, "a", 1))
    human = load_run_dir(d).summary["human"]
    assert human["ceiling"]["n_triples"] == 9 and human["ceiling"]["ci_low"] is None
    assert "(n=9); no interval: 9 triples, 10 needed" in format_human(human)


def test_answer_file_written_before_the_item_id_rename_still_reads(tmp_path):
    """Answer lines that name the suite item triple_id (as answer files did) read as item_id;
    new lines are written as item_id."""
    from relbench.results.answers import read_events

    new = _answer("a", "m1", "main", "pos").model_dump_json()
    assert '"item_id":"t"' in new and "triple_id" not in new
    path = tmp_path / "a.jsonl"
    path.write_text(new.replace('"item_id"', '"triple_id"') + "\n", encoding="utf-8")
    (event,) = read_events(path)
    assert event == _answer("a", "m1", "main", "pos") and event.item_id == "t"
