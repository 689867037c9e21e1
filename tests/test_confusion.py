"""Predicate confusion matrices: planted boxes, planted VLM letter probabilities, planted runs
whose matrices and paired differences are known by hand."""

import json
import re

import numpy as np
import pytest

from relbench.errors import UserError
from relbench.metrics.vlm_judge import (
    CHOICE_COLUMNS, VlmJudge, choice_distribution, choice_orders,
)
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.results.confusion import confusion_matrix, paired_confusion, run_confusions, seen_vector
from relbench.spec.data import Case, Triple
from relbench.spec.predicates import load_vocabulary
from test_spatial_metric import DOG_CAT, CAT_DOG, metric, sample

CTX = Context(vocab=load_vocabulary())
FOUR = ["above", "below", "left of", "right of"]


# --- boxes -----------------------------------------------------------------------------------


def test_spatial_seen_lists_every_rule_that_holds():
    m = metric()
    # scene 1: dog (0,0,10,10), cat (30,0,40,10): centre offset -30 px (GenEval margin 2 px) -> left
    # of; gap 20 px >= 0.75 x size 10 -> far from; nothing else. Scene 4: the cat 1 px to the right,
    # overlapping: the offset is inside the margin (no direction), gap 0 -> near, equal areas -> not
    # in, equal bottoms -> neither in front of nor behind. Scene 3: the cat is missing.
    rows = m.score([sample(DOG_CAT, CAT_DOG, "k1", "k2"), sample(DOG_CAT, CAT_DOG, "k4", "k2"),
                    sample(DOG_CAT, CAT_DOG, "k3", "k2")])
    assert [(r["spatial_seen"], r["spatial_seen_n"]) for r in rows] == [
        ("left of;far from", 2.0), ("near", 1.0), (None, None)]
    spec = m.confusions()[0]
    assert spec.judge == "spatial" and spec.encoding == "set"
    # the relbench rule set covers all 14 geometric predicates, listed in vocabulary order
    assert spec.predicates[:3] == ("above", "near", "behind") and len(spec.predicates) == 14
    # several rule sets: the first one's candidates (GenEval's four directions)
    assert metric(rule_set=["geneval", "relbench"]).confusions()[0].predicates == ("above", "below", "left of", "right of")


# --- the matrix --------------------------------------------------------------------------------


def _rows(run, seen_of_item, asked="left of", n_items=12, seeds=2, column="spatial_seen"):
    """Planted samples.csv rows: item i's seeds all see seen_of_item(i)."""
    out = []
    for i in range(n_items):
        for s in range(seeds):
            seen = seen_of_item(i)
            out.append({"run": run, "case_id": f"{asked}-{i}-s{s}", "item_id": f"{asked}-{i}", "predicate": asked,
                        column: seen, f"{column}_n": None if seen is None else 1.0})
    return out


SPEC = {"judge": "spatial", "column": "spatial_seen", "judged": "spatial_seen_n", "predicates": FOUR,
        "encoding": "set"}


def test_matrix_rows_normalised_over_judged_images():
    # 12 items x 2 seeds asked "left of": 6 items drawn right (left of holds), 3 mirrored (right
    # of), 3 drawn left and above at once (both hold); 2 more items not judged (no boxes)
    def seen(i):
        return "left of" if i < 6 else "right of" if i < 9 else "above;left of" if i < 12 else None
    rows = _rows("a", seen, n_items=14)
    m = confusion_matrix(rows, SPEC, n_resamples=500)
    row = m["rows"]["left of"]
    assert m["predicates"] == FOUR
    assert (row["n"], row["n_items"]) == (24, 12)  # the unjudged items are not in the row
    assert row["seen"] == {"above": 0.25, "below": 0.0, "left of": 0.75, "right of": 0.25}
    assert sum(row["seen"].values()) == 1.25  # several may hold: a box row may sum over 1
    lo, hi = row["ci"]["left of"]
    assert lo < 0.75 < hi and row["ci"]["below"] == [0.0, 0.0]
    # fewer than 10 items: no interval (relbench.stats.bootstrap.MIN_TRIPLES)
    few = confusion_matrix(_rows("a", seen, n_items=5), SPEC, n_resamples=200)["rows"]["left of"]
    assert few["ci"]["left of"] is None and few["seen"]["left of"] == 1.0


def test_chance_rows_come_from_the_reference_run():
    rows = {"gen": _rows("gen", lambda i: "right of"), "reference": _rows("reference", lambda i: "left of" if i % 4 else "")}
    found = run_confusions(rows, [SPEC], "reference", n_resamples=200)
    assert found["gen"]["spatial"]["rows"]["left of"]["chance"] == {"above": 0.0, "below": 0.0, "left of": 0.75,
                                                                   "right of": 0.0}
    assert "chance" not in found["reference"]["spatial"]["rows"]["left of"]
    alone = run_confusions({"gen": rows["gen"]}, [SPEC], None, n_resamples=200)
    assert "chance" not in alone["gen"]["spatial"]["rows"]["left of"]


def test_seen_values_are_checked():
    assert seen_vector("", "set", FOUR) == dict.fromkeys(FOUR, 0.0)  # judged, nothing holds
    assert seen_vector('{"above": 0.75, "below": 0.25}', "distribution", FOUR)["below"] == 0.25
    with pytest.raises(UserError, match="'on' is not a candidate predicate"):
        seen_vector("on;above", "set", FOUR, where="samples.csv")
    with pytest.raises(UserError, match="not a JSON object"):
        seen_vector("above", "distribution", FOUR, where="samples.csv")


def test_paired_difference_of_two_planted_runs():
    # A draws "left of" right on items 0-9 and mirrors on 10-11; B gets every item right. Per
    # cell B - A: left of +2/12, right of -2/12; above and below 0 with p 1
    a = _rows("a", lambda i: "left of" if i < 10 else "right of")
    b = _rows("b", lambda i: "left of")
    d = paired_confusion(a, b, SPEC, n_resamples=500)["rows"]["left of"]
    assert d["n"] == 24 and d["n_items"] == 12
    assert d["diff"]["left of"] == pytest.approx(2 / 12) and d["diff"]["right of"] == pytest.approx(-2 / 12)
    assert d["diff"]["above"] == 0.0 and d["p_value"]["above"] == 1.0
    # sign flips of 12 items' differences, two of them nonzero: |mean| >= 2/12 only when both
    # keep their sign or both flip, 2 of 4 -> p = 0.5 (exact: 2^12 < 9999)
    assert d["p_value"]["left of"] == pytest.approx(0.5)
    lo, hi = d["ci"]["left of"]
    assert 0.0 <= lo < 2 / 12 < hi
    # pairing is on case_id: a case A has and B lacks is left out
    d = paired_confusion(a, b[1:], SPEC, n_resamples=200)["rows"]["left of"]
    assert d["n"] == 23 and d["n_items"] == 12


# --- the VLM multiple choice -------------------------------------------------------------------


def test_choice_orders_put_every_predicate_at_every_letter():
    orders = choice_orders(FOUR, "img0")
    assert len(orders) == 4 and all(sorted(o) == sorted(FOUR) for o in orders)
    for pos in range(4):
        assert sorted(o[pos] for o in orders) == sorted(FOUR)
    assert choice_orders(FOUR, "img0") == orders  # same image, same orders


def test_choice_distribution_cancels_a_letter_preference():
    orders = [FOUR[r:] + FOUR[:r] for r in range(4)]
    # a judge that answers "A" whatever it sees: every predicate gets exactly 1/4
    dist, mass = choice_distribution(orders, [[0.9, 0.0, 0.0, 0.0]] * 4)
    assert dist == {p: 0.25 for p in FOUR} and mass == pytest.approx(0.9)


class _PlantedJudge:
    """Letter probabilities by rule: 0.01 each, +0.5 on the letter whose option is the image's
    planted predicate, +0.3 on "A" (a position bias)."""

    def __init__(self, planted):
        self.planted = planted  # image index -> predicate it "shows"
        self.counts = {"images": 0, "forwards": 0, "questions": 0}

    def probabilities(self, images, questions, answers):
        out = []
        for q in questions:
            options = dict(re.findall(r"([A-Z]): a dog (.+?) a cat", q.text))
            seen = self.planted[q.image]
            row = []
            for group in answers:
                letter = group[0]
                if letter not in options:
                    row.append(0.0)
                    continue
                text = options[letter]
                row.append(0.01 + (0.5 if text == CTX.vocab.get(seen).text else 0.0) + (0.3 if letter == "A" else 0.0))
            out.append(row)
        return out


def _judge(tmp_path, **kw):
    d = tmp_path / "judge"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"")
    return VlmJudge(VlmJudge.Args(model=str(d), modes=["choice"], **kw), CTX)


def _vlm_sample(i, key, asked="left of"):
    pos, neg = Triple("dog", asked, "cat"), Triple("cat", asked, "dog")
    case = Case(id=f"c{i}", item_id=f"t{i}", pos=(pos,), neg=(neg,), negative_kind="swap", seed=0)
    texts = (f"a dog {asked} a cat", f"a cat {asked} a dog")
    return Sample(case, "run", *texts, key, None, _load=lambda k: np.zeros((8, 8, 3), np.uint8), texts=texts)


def test_vlm_choice_reads_planted_letter_probabilities(tmp_path):
    m = _judge(tmp_path, choice_predicates=["left of", "right of", "above", "below"])
    assert m.candidates == ("above", "below", "left of", "right of")  # vocabulary order
    m._vlm = _PlantedJudge({0: "right of", 1: "left of"})
    rows = m.score([_vlm_sample(0, "img0"), _vlm_sample(1, "img1")])
    assert set(rows[0]) == set(CHOICE_COLUMNS)
    # per order the letters sum to S = 4 x 0.01 + 0.5 + 0.3 = 0.84. The planted predicate gets
    # 0.81 / S when it is option A (one order of four), 0.51 / S otherwise; any other gets
    # 0.31 / S as A, 0.01 / S otherwise: means 2.34 / 3.36 and 0.34 / 3.36
    dist = json.loads(rows[0]["vlm_choice_seen"])
    assert dist["right of"] == pytest.approx(2.34 / 3.36)
    for p in ("above", "below", "left of"):
        assert dist[p] == pytest.approx(0.34 / 3.36)
    assert rows[0]["vlm_choice_p"] == pytest.approx(0.34 / 3.36)  # asked "left of", it showed "right of"
    assert rows[1]["vlm_choice_p"] == pytest.approx(2.34 / 3.36)
    assert rows[0]["vlm_choice_mass"] == pytest.approx(0.84)
    spec = m.confusions()[0].to_json()
    mat = confusion_matrix([{**r, "run": "x", "case_id": f"c{i}", "item_id": f"t{i}", "predicate": "left of"}
                            for i, r in enumerate(rows)], spec, n_resamples=100)
    row = mat["rows"]["left of"]
    assert row["n"] == 2 and sum(row["seen"].values()) == pytest.approx(1.0)
    assert row["seen"]["right of"] == pytest.approx((2.34 + 0.34) / 2 / 3.36)
    assert next(a for a in m.aggregates() if a.key == "vlm_choice_p").chance == 0.25


def test_vlm_choice_bad_predicates_are_one_line(tmp_path):
    with pytest.raises(UserError, match="choice_predicates: 'flying' is not in the predicate vocabulary"):
        _judge(tmp_path, choice_predicates=["left of", "flying"])
    with pytest.raises(UserError, match="give 2 to 26 distinct predicates"):
        _judge(tmp_path, choice_predicates=["left of", "to the left of"])  # one predicate, two spellings


def test_vlm_choice_on_a_tiny_judge_matches_generate(tmp_path):
    """The choice questions go through the real VLM path: each order's letter probabilities are
    GenEval 2's generate() reading of the same question."""
    from PIL import Image

    from relbench.testing.models.vlm import geneval2_probabilities, make_tiny_vlm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = make_tiny_vlm("qwen3_vl", tmp_path / "tiny")
    m = VlmJudge(VlmJudge.Args(model=path, modes=["choice"], choice_predicates=["left of", "right of", "above"],
                               batch_size=2), CTX)
    img = np.random.RandomState(0).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    s = Sample(_vlm_sample(0, "img0").case, "run", "a", "b", "img0", None, _load=lambda k: img, texts=("a", "b"))
    row = m.score([s])[0]
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).eval()
    proc = AutoProcessor.from_pretrained(path, local_files_only=True)
    orders = choice_orders(m.candidates, "img0")
    letters = [("A", " A"), ("B", " B"), ("C", " C")]
    probs = []
    for order in orders:
        options = " ".join(f"{l}: a dog {CTX.vocab.get(p).text} a cat" for (l, _), p in zip(letters, order))
        q = f"Which caption matches the image? {options} Answer with a letter."
        probs.append(geneval2_probabilities(model, proc, Image.fromarray(img), q, letters))
    ref, mass = choice_distribution(orders, probs)
    got = json.loads(row["vlm_choice_seen"])
    for p in m.candidates:
        assert got[p] == pytest.approx(ref[p], abs=1e-5)
    assert row["vlm_choice_mass"] == pytest.approx(mass, abs=1e-5)
    assert m.counts["questions"] == 3 and m.counts["forwards"] == 2


# --- through the CLI: run, summary.json, compare, report ------------------------------------------



@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    from conftest import SMALL, run_cli

    d = tmp_path_factory.mktemp("confusion")
    (d / "bench.yaml").write_text(SMALL.format(out=d / "out", tpp=4).replace("[pair_mse]", "[spatial]"))
    res = run_cli("run", "--config", str(d / "bench.yaml"))
    assert res.returncode == 0, res.stderr
    return d / "out"


def test_run_writes_the_matrix_recomputable_from_samples(shapes_run):
    from relbench.results.confusion import stored_specs
    from relbench.results.read import load_run_dir

    rd = load_run_dir(shapes_run)
    summary = rd.summary
    spec = stored_specs(summary)["spatial"]
    oracle, inverse = (summary["runs"][r]["confusion"]["spatial"] for r in ("oracle", "inverse"))
    # the oracle draws what it is asked, the inverse the mirror: every left-of image of the
    # oracle holds left of, every one of the inverse right of (shapes boxes are exact)
    for asked, mirror in (("left of", "right of"), ("above", "below"), ("in front of", "behind")):
        assert oracle["rows"][asked]["seen"][asked] == 1.0 and oracle["rows"][asked]["seen"][mirror] == 0.0
        assert inverse["rows"][asked]["seen"][asked] == 0.0 and inverse["rows"][asked]["seen"][mirror] == 1.0
    row = inverse["rows"]["left of"]
    assert (row["n"], row["n_items"]) == (8, 4)  # 4 items x 2 seeds
    assert row["chance"] == summary["runs"]["reference"]["confusion"]["spatial"]["rows"]["left of"]["seen"]
    # the same numbers again from samples.csv and the stored spec alone
    mine = [r for r in rd.rows if r["run"] == "inverse"]
    again = confusion_matrix(mine, spec, n_resamples=2000, seed=0)
    assert again["rows"]["left of"]["seen"] == row["seen"]


def test_compare_pairs_the_matrices_cell_by_cell(shapes_run, tmp_path):
    from relbench.results.compare import compare, flat_rows
    from relbench.results.read import load_run_dir

    result = compare([load_run_dir(shapes_run)], n_resamples=500)
    [c] = result["confusion_paired"]
    assert (c["judge"], c["run"], c["against"]) == ("spatial", "inverse", "oracle")
    d = c["rows"]["left of"]
    # inverse minus oracle: left of 0 - 1 on every image, right of 1 - 0; 4 items, every item's
    # difference the same sign: exact sign-flip p = 2 / 2^4
    assert d["diff"]["left of"] == -1.0 and d["diff"]["right of"] == 1.0
    assert d["p_value"]["left of"] == pytest.approx(2 / 16)
    assert d["ci"]["left of"] is None  # 4 items: too few for an interval
    flat = [r for r in flat_rows(result) if r["section"] == "confusion_paired"]
    assert {"key": "confusion.spatial:left of->right of", "value": 1.0} == {
        k: v for k, v in next(r for r in flat if r["key"] == "confusion.spatial:left of->right of").items()
        if k in ("key", "value")}


def test_report_draws_the_heatmap_escaped(shapes_run, tmp_path):
    from relbench.reports.build import build_context, render

    ctx = build_context([shapes_run], charts=False)
    secs = {(s["run"], s["judge"]): s for s in ctx["confusion"]}
    assert set(secs) == {("oracle", "spatial"), ("inverse", "spatial"), ("reference", "spatial")}
    row = next(r for r in secs[("inverse", "spatial")]["rows"] if r["asked"] == "left of")
    assert row["own"]["text"] == "0.00"  # the asked predicate's own share comes first
    assert [c["diagonal"] for c in row["cells"]].count(True) == 1
    assert next(c for c in row["cells"] if c["diagonal"])["text"] == "0.00"
    html = render(ctx)
    assert 'id="confusion"' in html and "What it drew instead" in html
    # a predicate name is user text: escaped in the page
    secs[("inverse", "spatial")]["predicates"][0] = "<b>x</b>"
    assert "&lt;b&gt;x&lt;/b&gt;" in render(ctx)


# --- people: the predicate question of `relbench annotate` ---------------------------------------

MIRROR = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _planted_person(item) -> int:
    """A person who sees the mirror of a directional predicate and the asked one otherwise:
    the option number of that predicate (can't tell, 0, for 'near')."""
    if item.predicate == "near":
        return 0
    return item.choices.index(MIRROR.get(item.predicate, item.predicate)) + 1


@pytest.fixture(scope="module")
def annotate_run(tmp_path_factory):
    from annotate_helpers import make_shapes_run

    return make_shapes_run(tmp_path_factory.mktemp("human"), triples=2)


def test_predicate_plan_asks_img_pos_over_the_asked_predicates(annotate_run):
    from relbench.annotate.plan import build_plan

    plan = build_plan([annotate_run], n=40, seed=1, question="predicate")
    caption = build_plan([annotate_run], n=40, seed=1)
    assert plan.id != caption.id and {it.question for it in plan.items} == {"predicate"}
    assert {it.side for it in plan.items} == {"pos"}  # the confusion matrix is of img_pos
    asked = {it.predicate for it in plan.items}
    for it in plan.items:
        assert sorted(it.choices) == sorted(build_plan([annotate_run], n=200, question="predicate").items[0].choices)
        assert it.options()[0] == (1, f"{it.subject} {it.choices[0]} {it.object}")
    assert asked <= set(plan.items[0].choices)
    # each annotator sees the options in an order of their own; a repeat shows them reversed
    a, b = plan.for_annotator("ann"), plan.for_annotator("bob")
    assert [it.choices for it in a.items] != [it.choices for it in b.items]
    for rep in (it for it in a.items if it.kind == "repeat"):
        assert rep.choices == a.by_id[rep.copy_of].choices[::-1]


def test_human_confusion_from_planted_answers(annotate_run, tmp_path):
    from annotate_helpers import fresh_copy

    from relbench.annotate.plan import build_plan
    from relbench.annotate.server import Session, templates
    from relbench.results.answers import all_answers
    from relbench.results.read import load_run_dir

    d = fresh_copy(annotate_run, tmp_path / "run")
    plan = build_plan([d], n=200, seed=0, question="predicate").for_annotator("ann")
    session = Session(plan, "ann")
    for it in plan.items:
        session.served.add(it.id)
        assert session.answer(it.id, _planted_person(it)) is None
    answers = all_answers(d)
    assert {a.question for a in answers} == {"predicate"}
    assert all(a.seen == (None if a.choice == 0 else a.choices[a.choice - 1]) for a in answers)
    rd = load_run_dir(d)
    m = rd.summary["runs"]["inverse"]["confusion"]["human"]
    # 2 items x 1 seed per predicate; the person saw right of for every left-of image, etc.
    row = m["rows"]["left of"]
    assert (row["n"], row["n_items"]) == (2, 2)
    assert row["seen"]["right of"] == 1.0 and row["seen"]["left of"] == 0.0 and sum(row["seen"].values()) == 1.0
    assert m["rows"]["in"]["seen"]["in"] == 1.0
    assert "near" not in m["rows"]  # can't tell is not judged
    assert row["chance"]["right of"] == 1.0  # the same person on the reference images
    # predicate answers are not caption judgments: no human_acc from them
    assert "human_acc" not in rd.summary["runs"]["inverse"]["metrics"]
    # the page shows the question and every option, escaped by the template
    it = plan.items[0]
    html = templates().get_template("page.html.j2").render(
        annotator="ann", item=it, done=0, total=1, token="t", can_undo=False, message="",
        guide={"rules": [], "meanings": []})
    assert f"Which relation between the {it.subject} and the {it.object} does the image show?" in html
    assert all(f'id="choice-{n}"' in html for n in range(1, len(it.choices) + 1))


def test_predicate_answers_offline_round_trip(annotate_run, tmp_path):
    from annotate_helpers import fresh_copy, page_items, page_payload, submission

    from relbench.annotate import offline
    from relbench.annotate.plan import build_plan
    from relbench.results.answers import annotator_answers

    d = fresh_copy(annotate_run, tmp_path / "run")
    plan = build_plan([d], n=30, seed=0, question="predicate")
    html = offline.export_page(plan, tmp_path, "remote")
    shown = page_items(html, plan)
    payload = page_payload(html)
    assert payload["items"][0]["captions"] == [t for _, t in shown[0].options()]
    sub = submission(html, [_planted_person(it) for it in shown])
    bad = json.loads(json.dumps(sub))
    bad["answers"][0]["choice"] = len(shown[0].choices) + 1
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(UserError, match="choice .* out of range"):
        offline.import_answers([d], f)
    f = tmp_path / "good.json"
    f.write_text(json.dumps(sub))
    merged, who, _ = offline.import_answers([d], f)
    assert (merged, who) == (len(shown), "remote")
    stood = {a.item: a for a in annotator_answers([d], "remote")}
    for it in shown:
        c = _planted_person(it)
        assert stood[it.id].seen == (it.choices[c - 1] if c else None)
