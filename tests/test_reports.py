"""HTML reports: the pieces (thumbnails, boxes, charts, ordering) and reports of real runs."""

import base64
import csv
import io
import json
import re

import pytest
from PIL import Image

from relbench.reports.build import _severity, charted_keys
from relbench.reports.charts import bar_chart
from relbench.reports.thumbs import parse_boxes, thumbnail

# --- pieces ------------------------------------------------------------------------------------


def decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_thumbnail_scales_and_draws_boxes(tmp_path):
    p = tmp_path / "img.png"
    Image.new("RGB", (200, 100), "white").save(p)
    boxes = {"dog": [10, 10, 60, 60, 0.9], "horse": [100, 20, 190, 90, 0.8]}
    uri = thumbnail(p, boxes, ["dog", "horse"], size=100)
    im = decode(uri)
    assert im.size == (100, 50)  # longest side 100, aspect kept: scale 0.5
    r, g, b = im.getpixel((5, 17))  # dog's left edge at x = 10 * 0.5: the subject's red (JPEG-blurred)
    assert r > 140 and r > g + 60 and r > b + 60
    r, g, b = im.getpixel((70, 25))  # inside the horse box (50..95 x 10..45): untouched white
    assert min(r, g, b) > 220
    r, g, b = im.getpixel((51, 30))  # horse's left edge: the object's blue
    assert b > 140 and b > r + 40
    assert len(uri) < 6000  # small enough to embed hundreds


def test_thumbnail_of_missing_file_is_none(tmp_path):
    assert thumbnail(tmp_path / "nope.png") is None
    assert thumbnail(None) is None


def test_parse_boxes_tolerates_absent_and_bad_values():
    assert parse_boxes('{"a": [1, 2, 3, 4, 0.5]}') == {"a": [1, 2, 3, 4, 0.5]}
    assert parse_boxes(None) == {} and parse_boxes("") == {} and parse_boxes("{not json") == {}
    assert parse_boxes('{"a": [1, 2]}') == {} and parse_boxes("[1, 2, 3, 4]") == {}


def test_chart_is_inline_svg_with_escaped_labels():
    svg = bar_chart("acc <b>", ["above", "<script>alert(1)</script>"],
                    [{"label": "<img src=x onerror=alert(2)>", "values": [0.5, None], "lo": [0.4, None],
                      "hi": [0.6, None]}], chance=[0.5, None])
    assert svg.startswith("<svg") and 'class="chart"' in svg.split(">", 1)[0]
    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "&lt;img src=x" in svg
    assert 'width="' not in svg.split(">", 1)[0]  # scales with the page


def test_gallery_order_worst_first():
    rows = [
        {"case_id": "ok", "pair_correct": 1.0, "clip_acc": 1.0, "pair_mse": 50.0},
        {"case_id": "wrong-relation", "pair_correct": 0.0, "clip_acc": 1.0, "pair_mse": 900.0},
        {"case_id": "wrong-text", "pair_correct": 1.0, "clip_acc": 0.0, "pair_mse": 900.0},
        {"case_id": "graph-ignored", "pair_correct": 1.0, "clip_acc": 1.0, "pair_mse": 0.0},
        {"case_id": "unjudged", "pair_correct": None, "clip_acc": None, "pair_mse": 0.0},
    ]
    assert [r["case_id"] for r in sorted(rows, key=_severity)] == [
        "wrong-relation", "wrong-text", "graph-ignored", "ok", "unjudged"]


# --- a real run of the shapes suite ------------------------------------------------------------

CONFIG = """\
name: report-test
suite: {{kind: shapes, triples_per_predicate: 2}}
seeds: [0, 1]
metrics: [pair_mse, {{name: spatial, args: {{detector: shapes}}}}]
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: ignore, generator: shapes_ignore_relation}}
  - {{name: ignore-neutral, generator: shapes_ignore_relation, prompt_mode: neutral}}
output_dir: {out}
"""


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    from conftest import run_cli

    d = tmp_path_factory.mktemp("shapes")
    cfg = d / "bench.yaml"
    cfg.write_text(CONFIG.format(out=d / "out"))
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return d / "out", res.stdout


def figures(html: str) -> list[str]:
    return re.findall(r'<figure class="pair[ "].*?</figure>', html, re.S)


def test_run_writes_report(shapes_run):
    out, stdout = shapes_run
    html = (out / "report.html").read_text()
    assert f"report: {out}/report.html" in stdout
    summary = json.loads((out / "summary.json").read_text())
    # summary table: one row per aggregate, one column per generator run, and the ceiling
    table = re.search(r'<table class="summary">.*?</table>', html, re.S).group(0)
    header = re.search(r"<thead>.*?</thead>", table, re.S).group(0)
    assert [h for h in re.findall(r"<th>(.*?)</th>", header)] == [
        "metric", "better", "chance", "ceiling (reference)", "oracle", "ignore", "ignore-neutral"]
    keys = list(summary["runs"]["oracle"]["metrics"])
    specs = {k: v for m in summary["metrics"].values() for k, v in m["specs"].items()}
    # headline accuracy first, then keys with a better direction, then bookkeeping and pair sensitivity
    order = ([k for k in keys if specs[k]["headline"]]
             + [k for k in keys if not specs[k]["headline"] and specs[k]["higher_is_better"] is not None]
             + [k for k in keys if specs[k]["higher_is_better"] is None])
    assert order[0] == "spatial_pair_acc" and order.index("mse_mean") > order.index("spatial_pos_acc")
    assert re.findall(r'<tr class="[a-z]*"><td title="[^"]*">([a-z_]+)</td>', table) == order
    # bookkeeping rows are not marked "higher is better"
    for k in ("spatial_pos_checkable", "spatial_pos_not_checkable", "mse_mean"):
        assert re.search(rf'<tr class="bookkeeping"><td title="[^"]*">{k}</td><td>–</td>', table), k
    # each key's definition (summary.json's metrics.*.aggregates) is its tooltip
    assert '<td title="mean over cases of the g+/g- pixel MSE (0-255 scale)">mse_mean</td>' in table
    # per predicate: a chart and a 9-row table for each headline key
    runs = [summary["runs"][n] for n in summary["runs"]]
    heads = [k for k in keys if any(r["metrics"][k].get("chance") is not None for r in runs)
             or k in ("mse_mean", "spatial_pos_detected")]
    assert re.findall(r'<table class="predicate" data-key="([^"]+)"', html) == heads
    # + one dot-and-interval chart per headline key in the opening panel
    assert html.count('<svg') == len(heads) + 1 and html.count('class="chart"') == len(heads) + 1
    pred_table = re.search(r'<table class="predicate" data-key="spatial_pair_acc">.*?</table>', html, re.S).group(0)
    assert pred_table.count("<tr><td>") == 9
    # comparisons: no pinned record unasked (the 256 px VG seed record is no yardstick for a 64 px
    # shapes suite), paired vs the first run, relation vs neutral
    assert not re.search(r"<h4>seed-", html) and "compared only when asked for" in html
    assert "<h4>ignore − oracle</h4>" in html and "<h4>ignore-neutral − oracle</h4>" in html
    assert "<h4>shapes_ignore_relation: ignore − ignore-neutral</h4>" in html
    # the manifest, last
    assert html.index('id="manifest"') > html.index('id="gallery"')
    assert "&#34;seeds&#34;: [" in html or "&quot;seeds&quot;: [" in html


def test_report_gallery_shows_failures_with_boxes(shapes_run):
    """Where a run has failures the gallery shows them, worst first and marked; where it has none
    (the oracle) one case, marked as judged right: not three "worst" cases that are all right."""
    out, _ = shapes_run
    html = (out / "report.html").read_text()
    figs = figures(html)
    assert all(f.count('src="data:image/jpeg;base64,') == 2 for f in figs)
    rows = list(csv.DictReader((out / "samples.csv").read_text().splitlines()))
    assert all(json.loads(r["pos_boxes"]) for r in rows)  # the shapes detector finds every object
    expected = 0
    for pred in sorted({r["predicate"] for r in rows}):
        for run in ("oracle", "ignore", "ignore-neutral"):
            mine = [r for r in rows if r["run"] == run and r["predicate"] == pred]
            wrong = sum(r["pair_correct"] == "0.0" for r in mine)
            shown = re.search(rf"<h3 id=\"gallery-\d+\">{pred}</h3>.*?<h4>{run} <span class=\"muted small\">"
                              rf"\(([^)]*)\)</span></h4>(.*?</div>\n)(?=<h4>|<h3|</section>)", html, re.S)
            note, block = shown.groups()
            verdicts = re.findall(r'<figure class="pair (\w+)"', block)
            shown_correct = re.findall(r"<dt>pair_correct</dt><dd>([0-9.]+)</dd>", block)
            if wrong:
                assert note == f"{wrong} failure{'s' if wrong > 1 else ''} of {len(mine)} cases; {min(wrong, 3)} shown"
                assert verdicts == ["failure"] * min(wrong, 3) and set(shown_correct) == {"0"}
            else:
                assert note == f"no failures: all {len(mine)} cases judged right; one shown"
                assert verdicts == ["right"] and shown_correct == ["1"] and '<div class="badge right">judged right' in block
            expected += min(wrong, 3) if wrong else 1
    assert run == "ignore-neutral" and len(figs) == expected
    assert "oracle" in html and "no failures: all 4 cases judged right" in html


def test_report_is_offline_and_bounded(shapes_run):
    out, _ = shapes_run
    html = (out / "report.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # nothing is fetched: every src/href is a data: URI or an in-page anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:", "#")), attr
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))  # SVG clip paths in the page
    assert "@import" not in html and "<script" not in html
    assert (out / "report.html").stat().st_size < 1_500_000


def test_report_command_for_several_run_dirs(cli, shapes_run, tmp_path):
    out, _ = shapes_run
    res = cli("report", str(out), str(out), "-o", str(tmp_path / "both.html"))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "both.html").read_text()
    # the same run names from two directories are told apart by directory
    assert "<th>out:oracle</th>" in html and "<th>out:oracle#2</th>" in html
    assert cli("report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.html")).returncode == 2


def test_no_report_flag(cli, small_config, tmp_path):
    res = cli("run", "--config", str(small_config(tpp=1)), "--no-report")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "summary.json").is_file() and not (tmp_path / "out" / "report.html").exists()


def test_charted_keys():
    class R:
        def __init__(self, metrics):
            self.metrics = metrics

    runs = [R({"mse_mean": {"metric": "pair_mse"}, "mse_std": {"metric": "pair_mse"},
               "acc": {"metric": "m", "chance": 0.5}, "count": {"metric": "m"}, "clip_pos_margin": {"metric": "c"}})]
    # first of each metric, anything with a chance level, the seed's keys; not mse_std
    assert charted_keys(runs) == ["mse_mean", "acc", "clip_pos_margin"]


def test_metric_flags_are_shown(shapes_run, tmp_path):
    """A metric's warning in summary.json (e.g. LPIPS on a random backbone) heads the report."""
    import shutil

    from relbench.reports import build_report

    out, _ = shapes_run
    copy = tmp_path / "flagged"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("images", "cache"))
    summary = json.loads((copy / "summary.json").read_text())
    summary["metrics"]["pair_mse"]["flags"] = ["uncalibrated: <random> backbone"]
    (copy / "summary.json").write_text(json.dumps(summary))
    build_report([copy], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert '<p class="note flag"><b>pair_mse</b>: uncalibrated: &lt;random&gt; backbone' in html
    # without the images the gallery says so instead of failing
    assert '<div class="missing">no image</div>' in html


# --- the opening panel, detection, zero vs missing, records --------------------------------------


def _edited_copy(out, tmp_path, edit):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("images", "cache"))
    summary = json.loads((copy / "summary.json").read_text())
    edit(summary)
    (copy / "summary.json").write_text(json.dumps(summary))
    return copy


def _section(html, ident):
    return re.search(rf'<section id="{ident}">.*?</section>', html, re.S).group(0)


def test_report_opens_with_the_headline_answer(shapes_run):
    out, _ = shapes_run
    html = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    # the panel comes before every other section
    assert html.index('<section id="answer">') < html.index('<section id="summary">')
    answer = _section(html, "answer")
    assert re.findall(r'<table class="answer" data-key="([^"]+)"', answer) == ["spatial_pair_acc"]
    assert answer.count('class="chart"') == 1  # the dot-and-interval chart
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td class=\"(\w*)\"[^>]*>([^<]+)<span class=\"ci\">([^<]*)</span>",
                      re.search(r'<table class="answer".*?</table>', answer, re.S).group(0))
    m = {name: summary["runs"][name]["metrics"]["spatial_pair_acc"] for name in ("oracle", "ignore", "reference")}
    assert [r[0] for r in rows] == ["oracle", "ignore", "ignore-neutral", "ceiling (reference)"]
    assert rows[0][2:] == ("above", "1", "[1, 1]") and rows[3][2] == "ceiling"
    assert rows[1][3] == f"{m['ignore']['value']:.3g}" and rows[1][1] == f"{m['ignore']['chance']:.3g}"
    # predicate x run heatmap: 9 predicates, the 3 runs and the ceiling, shaded by value
    heat = re.search(r'<table class="heatmap" data-key="spatial_pair_acc">.*?</table>', answer, re.S).group(0)
    assert re.findall(r"<th>([^<]+)</th>", heat) == ["predicate", "chance", "oracle", "ignore", "ignore-neutral",
                                                    "ceiling (reference)"]
    assert heat.count("<tr><td>") == 9
    assert heat.count('style="background: rgb(27, 108, 168)') == 9 * 2  # oracle and ceiling: 1 everywhere


def test_headline_keys_come_from_the_specs(shapes_run, tmp_path):
    """Any aggregate its metric declares headline joins the panel (a future judge needs no
    report change)."""
    from relbench.reports import build_report

    out, _ = shapes_run

    def mark(summary):
        summary["metrics"]["spatial"]["specs"]["spatial_pos_acc"]["headline"] = True

    build_report([_edited_copy(out, tmp_path, mark)], tmp_path / "r.html")
    answer = _section((tmp_path / "r.html").read_text(), "answer")
    assert re.findall(r'<table class="answer" data-key="([^"]+)"', answer) == ["spatial_pos_acc", "spatial_pair_acc"]


def test_not_detected_is_not_a_relation_failure(shapes_run, tmp_path):
    """With detection at 0 an accuracy of 0 says nothing about the relation: it reads "not
    detected" (its own class), never red "below chance"."""
    from relbench.reports import build_report

    out, _ = shapes_run

    def blind(summary):
        run = summary["runs"]["ignore"]
        for scope in (run["metrics"], run["by_predicate"]["above"]):
            scope["spatial_pos_detected"].update(value=0.0, ci_low=0.0, ci_high=0.0)
            for k in ("spatial_pair_acc", "spatial_pos_acc"):
                scope[k].update(value=0.0, ci_low=0.0, ci_high=0.0)

    build_report([_edited_copy(out, tmp_path, blind)], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    answer = _section(html, "answer")
    assert re.search(r'<tr><td>ignore</td><td>[^<]*</td><td class="undetected">not detected<span', answer)
    heat = re.search(r'<table class="heatmap".*?</table>', answer, re.S).group(0)
    above = re.search(r"<tr><td>above</td>.*?</tr>", heat).group(0)
    assert re.findall(r'<td class="(\w*)"', above)[1] == "undetected" and "not detected" in above
    assert "not detected" in answer.split("<table")[0]  # in the chart too (no dot)
    summary_table = _section(html, "summary")
    for k in ("spatial_pair_acc", "spatial_pos_acc"):
        row = re.search(rf'<td title="[^"]*">{k}</td>.*?</tr>', summary_table, re.S).group(0)
        assert re.findall(r'<td class="(\w*)"[^>]*>', row)[2] == "undetected"  # ceiling, oracle, ignore
    # a real zero with detection is still red: the neutral run's copy is untouched
    assert "below" not in re.findall(r'<td class="(\w*)">', above)[1:2]


def test_chart_zero_and_missing_look_different():
    """A zero bar is drawn (a stub on the axis), a missing value is labelled, and a series
    with no bar at all has no legend entry."""
    svg = bar_chart("acc", ["above", "below", "near"], [
        {"label": "measured", "values": [0.5, 0.0, None], "lo": [0.4, 0.0, None], "hi": [0.6, 0.0, None]},
        {"label": "blind", "values": [None, None, None], "lo": [None] * 3, "hi": [None] * 3,
         "not_detected": [True, True, False]},
    ], chance=[None, None, None])
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert texts.count("not detected") == 2 and texts.count("n/a") == 2  # near: measured n/a, blind n/a
    legend = re.search(r'<g id="legend_1">.*', svg, re.S).group(0)
    assert "measured" in legend and "blind" not in legend and "chance" not in legend
    assert '<g id="LineCollection_' in svg  # the zero's stub


@pytest.mark.slow
def test_record_only_when_asked_or_declared(cli, shapes_run, tmp_path):
    out, _ = shapes_run
    res = cli("report", str(out), "--baseline", "seed-20ep", "-o", str(tmp_path / "asked.html"))
    assert res.returncode == 0, res.stderr
    assert re.search(r"<h4>seed-20ep", (tmp_path / "asked.html").read_text())
    declared = _edited_copy(out, tmp_path, lambda s: s.update(comparable_with=["seed-10ep-quick"]))
    res = cli("report", str(declared), "-o", str(tmp_path / "declared.html"))
    html = (tmp_path / "declared.html").read_text()
    assert re.search(r"<h4>seed-10ep-quick", html) and not re.search(r"<h4>seed-20ep", html)


def test_one_triple_prints_undefined_interval_and_writes_the_report(cli, small_config, tmp_path):
    """One triple (two seeds): no interval can be estimated. The table says "[–]" (it printed a
    zero-width interval from a single triple as if it were certain) and the run still ends with
    report.html."""
    res = cli("run", "--config", str(small_config(tpp=1)), "--limit", "1")
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.startswith("mse_mean"))
    assert line.count("[–]") == 3, line  # oracle, inverse, reference: two differing seeds each
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    e = summary["runs"]["oracle"]["metrics"]["mse_mean"]
    assert (e["n"], e["n_triples"], e["ci_low"], e["ci_high"]) == (2, 1, None, None)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<span class=\"ci\">[–]</span>" in html


# --- breakdown colours, verdicts, definitions ---------------------------------------------------

LAYOUT_CHANCE = 0.265  # the spatial judge's random-placement chance of "left of" in the run
LEFT_OF = [2, 2, 1, 3, 1, 2, 2, 1, 2, 3, 1, 1]  # right seeds (of 3) per triple: 21/36 = 0.583
AT_CHANCE = [1, 0, 1, 1, 0, 1, 2, 0, 1, 0, 1, 2]  # 10/36 = 0.28


def _synthetic_run(label, counts_by_predicate):
    """A run of 12 triples x 3 seeds per predicate, with summary entries from the real bootstrap."""
    from pathlib import Path

    from relbench.results.read import Run
    from relbench.results.aggregate import AggregateSpec
    from relbench.stats.bootstrap import cluster_bootstrap

    rows = [{"run": label, "predicate": p, "negative_kind": "swap", "item_id": f"{p}-{t}", "case_id": f"{p}-{t}-{s}",
             "pair_correct": float(s < k), "pair_chance": LAYOUT_CHANCE}
            for p, counts in counts_by_predicate.items() for t, k in enumerate(counts) for s in range(3)]

    def entry(rs):
        e = cluster_bootstrap([r["pair_correct"] for r in rs], [r["item_id"] for r in rs], n_resamples=2000)
        return {**e, "chance": LAYOUT_CHANCE}

    summary = {"metrics": {"acc": entry(rows)},
               "by_predicate": {p: {"acc": entry([r for r in rows if r["predicate"] == p])} for p in counts_by_predicate}}
    specs = {"acc": AggregateSpec("spatial", "pair_correct", "mean", chance_column="pair_chance", headline=True)}
    return Run(label, label, Path("."), summary, rows, specs), specs


def test_predicate_cells_are_coloured_only_after_holm():
    """Random placement showed green on "left of" (its interval clearing chance) because eight
    predicates were each held to their own 95% interval. Alone, 0.583 over 12 triples against
    chance 0.265 is above chance (binomial over triples, 7 of 12: p = 0.0197); among nine
    predicates Holm multiplies its p, the second smallest, by 8 (0.158): not shown to differ, so
    no colour. A predicate drawn every time stays green."""
    from relbench.reports.build import breakdown_section

    def flags(counts):
        run, specs = _synthetic_run("r", counts)
        sec = breakdown_section([run], None, ["acc"], "by_predicate", False, specs)[0]
        return {row["group"]: row["cells"][0] for row in sec["rows"]}, run

    alone, run = flags({"left of": LEFT_OF})
    e = run.summary["by_predicate"]["left of"]["acc"]
    assert e["ci_low"] > LAYOUT_CHANCE  # the interval alone clears chance
    assert alone["left of"]["flag"] == "above"
    assert alone["left of"]["test"] == ("binomial over 12 triples vs chance: p = 0.0197; "
                                        "Holm-adjusted over 1: p = 0.0197")
    many = {"left of": LEFT_OF, "drawn": [3] * 12,
            **{f"p{i}": AT_CHANCE[i:] + AT_CHANCE[:i] for i in range(7)}}
    cells, _ = flags(many)
    assert cells["left of"]["flag"] == "at"
    assert cells["left of"]["test"].endswith("Holm-adjusted over 9: p = 0.158")  # 8 x 0.0197: rank 2 of 9
    assert cells["drawn"]["flag"] == "above"
    assert all(cells[f"p{i}"]["flag"] == "at" for i in range(7))


def test_holm_adjusts_in_step_down_order():
    from relbench.stats.bootstrap import holm

    # sorted 0.01, 0.02, 0.04 (m = 3): 0.03, max(0.03, 0.04), max(0.04, 0.04); None is outside the family
    adj = holm([0.04, None, 0.01, 0.02])
    assert adj[1] is None and adj[2] == pytest.approx(0.03) and adj[3] == pytest.approx(0.04)
    assert adj[0] == pytest.approx(0.04)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_triple_chance_test_uses_triples_not_cases():
    """Three seeds of a triple move together: the trials are the 12 triples, not 36 cases. A
    run scoring 0 on all 18 triples of a 0.056 chance (random placement on pair accuracy, whose
    bootstrap interval is [0, 0]) is no evidence against chance; too few triples (under
    MIN_TRIPLES) is no test at all, as for the interval."""
    from scipy.stats import binomtest

    from relbench.stats.bootstrap import MIN_TRIPLES, triple_chance_test

    vals = [float(s < k) for k in LEFT_OF for s in range(3)]
    clusters = [t for t in range(12) for _ in range(3)]
    t = triple_chance_test(vals, [LAYOUT_CHANCE] * 36, clusters)
    assert (t["n_triples"], t["successes"]) == (12, 7)
    assert t["p_value"] == pytest.approx(binomtest(7, 12, LAYOUT_CHANCE).pvalue)
    zeros = triple_chance_test([0.0] * 36, [0.056] * 36, [t for t in range(18) for _ in range(2)])
    assert zeros["p_value"] == pytest.approx(binomtest(0, 18, 0.056).pvalue) and zeros["p_value"] > 0.5
    few = MIN_TRIPLES - 1
    assert triple_chance_test(vals[:3 * few], [LAYOUT_CHANCE] * 3 * few, clusters[:3 * few]) is None


def test_each_run_gets_a_verdict_from_its_interval():
    from dataclasses import replace

    from relbench.reports.build import verdicts

    drawn, specs = _synthetic_run("drawn", {"on": [3] * 12})
    inverted, _ = _synthetic_run("inverted", {"on": [0] * 12})
    at_chance, _ = _synthetic_run("random", {"on": AT_CHANCE})
    few, _ = _synthetic_run("few", {"on": [3, 0, 1, 2, 1]})  # 5 triples: no interval
    blind, _ = _synthetic_run("blind", {"on": [0] * 12})
    blind.summary["metrics"]["found"] = {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    specs = {"acc": replace(specs["acc"], requires_detected=("found",))}
    out = {v["label"]: v["parts"][0] for v in verdicts([drawn, inverted, at_chance, few, blind], specs, ["acc"])}
    assert {k: v["word"] for k, v in out.items()} == {
        "drawn": "draws the relation", "inverted": "inverted", "random": "at chance", "few": "undetermined",
        "blind": "not detected"}
    assert out["random"]["why"] == "0.278 [0.167, 0.417], chance 0.265"
    assert out["few"]["why"] == "0.467, no interval: values on fewer than 10 triples"


def test_report_reads_right(shapes_run):
    """The verdict line per run heads the report; each headline accuracy is defined where it is
    shown; "[–]" is captioned with the real threshold (MIN_TRIPLES = 10, not "two")."""
    out, _ = shapes_run
    html = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    top = html[:html.index('<section id="answer">')]
    lines = re.findall(r"<li><b>([^<]+)</b>: <span class=\"verdict ([a-z-]+)\">([^<]+)</span> by spatial_pair_acc", top)
    ignore = summary["runs"]["ignore"]["metrics"]["spatial_pair_acc"]
    assert lines[0] == ("oracle", "draws-the-relation", "draws the relation")
    assert [l[0] for l in lines] == ["oracle", "ignore", "ignore-neutral"]
    # random placement scores 0 on all 18 triples of a 0.056 chance: its bootstrap interval is
    # [0, 0], "below" chance, but 0 of 18 has binomial p = 0.62: at chance, not inverted, and
    # the answer table does not colour it red either
    assert (ignore["value"], ignore["ci_low"], ignore["ci_high"], ignore["n_triples"]) == (0, 0, 0, 18)
    assert lines[1][1:] == ("at-chance", "at chance")
    assert re.search(r'<tr><td>ignore</td><td>[^<]*</td><td class="at" title="binomial over 18 triples vs chance: '
                     r'p = 0.622">0<span', _section(html, "answer"))
    answer = _section(html, "answer")
    definition = summary["metrics"]["spatial"]["aggregates"]["spatial_pair_acc"]
    assert f'<p class="definition small">spatial_pair_acc: {definition}.</p>' in answer
    assert "fewer than two" not in html and '"[–]": interval undefined (values on fewer than 10 triples)' in html


def test_lab_table_defines_its_columns():
    from relbench.lab.table import table_markdown

    md = table_markdown({"rows": [], "paired": [], "world_chance": None})
    header = md.splitlines()[0]
    for column in ("both objects found", "relation acc (uncond.)", "acc given detected", "pair acc"):
        assert column in header and f"* {column}: `spatial_" in md


def _cap_count(svg: str) -> int:
    """Error-bar caps drawn: uses of the horizontal cap marker (capsize 1.5 pt)."""
    caps = re.findall(r'<path id="(m[0-9a-f]+)" d="M 1\.5 0 \s*L -1\.5 -?0 \s*"', svg)
    return sum(svg.count(f'xlink:href="#{m}"') for m in caps)


def test_chart_draws_no_error_caps_where_the_interval_is_undefined():
    """A bar whose interval is undefined (fewer than 10 triples) has no error bar: caps at its
    top would read as an interval of width 0, i.e. certainty."""
    svg = bar_chart("acc", ["a", "b", "c"], [
        {"label": "run", "values": [0.5, 0.4, 0.3], "lo": [0.4, None, 0.2], "hi": [0.6, None, 0.4]}], chance=None)
    assert _cap_count(svg) == 2 * 2  # a and c: a cap at each end


def test_chart_is_as_wide_as_its_legend_needs():
    """The legend stands right of the axes; the figure is widened by its measured width, so a
    long run name ends inside the chart (a fixed right margin cut it to "d_gen_rank_dropout_relatio")."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.textpath import TextPath

    name = "d_gen_rank_dropout_relation_neutral"
    series = [{"label": name, "values": [0.5, 0.4], "lo": [0.4, 0.3], "hi": [0.6, 0.5]}]
    short = bar_chart("acc", ["a", "b"], [{**series[0], "label": "x"}], chance=[0.2, 0.2])
    wide = bar_chart("acc", ["a", "b"], series, chance=[0.2, 0.2])

    def width(svg):
        return float(re.search(r'viewBox="0 0 ([0-9.]+) ', svg).group(1))

    def legend_x(svg):  # the x of the legend's label text
        legend = re.search(r'<g id="legend_1">.*', svg, re.S).group(0)
        return float(re.search(rf'<text [^>]*\bx="([0-9.]+)"[^>]*>{name}</text>', legend).group(1))

    def text_w(text):  # points, at the legend's 7 pt
        return TextPath((0, 0), text, size=7).get_extents().width

    assert legend_x(wide) + text_w(name) <= width(wide)
    # the short chart's widest entry is "chance": the long one is wider by the difference, not more
    assert width(wide) - width(short) == pytest.approx(text_w(name) - text_w("chance"), abs=3)
