"""The report in a real browser: headless Chromium renders it, screenshots it, and its own DOM
shows the tables and charts, and hostile names (a triple named <script>alert(1)</script>, a run
named <img onerror=...>) as text that runs nothing.

CI (.ci/run) installs Debian's chromium; the test is skipped only where none exists, and fails there under CI=true.
"""

import json
import re
import subprocess

import pytest
from PIL import Image

from conftest import CHROMIUM, run_cli

pytestmark = pytest.mark.browser  # skipped without a chromium, except under CI=true (conftest.py)

SCRIPT_NAME = "<script>alert(1)</script>"
# if this ran, the page title would change (and an inline script is what it would take)
TITLE_SCRIPT = "<script>document.title='pwned'</script>"
RUN_NAME = "<img src=x onerror=document.title='pwned'>"

CONFIG = """\
name: hostile-names
suite: {{kind: jsonl, path: {suite}}}
seeds: [0, 1]
metrics: [pair_mse, {{name: spatial, args: {{detector: shapes}}}}]
plugins: [tests.plugins.flat_colour]
runs:
  - {{name: "{run}", generator: flat_colour}}
  - {{name: plain, generator: flat_colour, prompt_mode: neutral}}
output_dir: {out}
"""


def chromium(*args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", "--disable-component-update", "--disable-sync", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    lines = [
        {"id": "x1", "subject": SCRIPT_NAME, "predicate": "on", "object": TITLE_SCRIPT},
        {"id": "x2", "subject": "dog", "predicate": "riding", "object": SCRIPT_NAME},
        {"id": "x3", "subject": "cat", "predicate": "above", "object": "<b id=pwned>bold</b>"},
    ]
    (d / "suite.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    (d / "bench.yaml").write_text(CONFIG.format(suite=d / "suite.jsonl", out=d / "out",
                                                run=RUN_NAME.replace('"', '\\"')))
    res = run_cli("run", "--config", str(d / "bench.yaml"))
    assert res.returncode == 0, res.stderr
    html = d / "out" / "report.html"
    assert html.is_file()
    return d, html


def test_dom_shows_tables_charts_and_hostile_names_as_text(report):
    d, html = report
    res = chromium(f"--user-data-dir={d / 'profile-dom'}", "--dump-dom", html.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "<body" in dom and 'id="gallery"' in dom  # the browser parsed the whole page
    # nothing ran: the title is the report's, no element came out of a name
    assert re.search(r"<title>relbench report: hostile-names</title>", dom)
    assert "pwned</title>" not in dom and 'id="pwned"' not in dom
    assert "<script" not in dom.lower() and "<img src=\"x\"" not in dom and "onerror=\"" not in dom
    # ... and the names are there as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=document.title='pwned'&gt;" in dom
    assert "&lt;b id=pwned&gt;bold&lt;/b&gt;" in dom
    # tables rendered with rows, charts as SVG with bars
    summary = re.search(r'<table class="summary">.*?</table>', dom, re.S).group(0)
    assert re.search(r"<td title=\"[^\"]*\">mse_mean</td>", summary) and re.search(r"<td title=\"[^\"]*\">mse_std</td>", summary)
    assert len(re.findall(r'<table class="predicate"', dom)) >= 1
    charts = re.findall(r'<svg[^>]*class="chart".*?</svg>', dom, re.S)
    mse_chart = re.search(r'<h3 id="pred-mse_mean">mse_mean</h3>\s*<p class="definition small">mse_mean: mean over '
                          r'cases[^<]*</p>\s*<figure[^>]*>\s*(<svg.*?</svg>)', dom, re.S).group(1)
    assert len(charts) > 1 and len(re.findall(r'<g id="patch_\d+"', mse_chart)) >= 4
    # the spatial judge found no object in flat colours: its bar charts draw no bar, only labels
    pos_chart = re.search(r'<h3 id="pred-spatial_pos_acc">.*?(<svg.*?</svg>)', dom, re.S).group(1)
    assert "not detected" in pos_chart
    # no object found: a 0 about detection, not a failure of the relation; one case per predicate
    # and run, marked "not detected"
    assert len(re.findall(r'<figure class="pair undetected"', dom)) == 6 == len(re.findall(r'<figure class="pair', dom))
    assert dom.count("no failures: 0 of 2 cases judged right, 2 not detected; one shown") == 6


def test_dom_opens_with_the_answer_panel(report):
    """The first section answers the question: the headline accuracy per run as a
    dot-and-interval chart, a table and a predicate x run heatmap. Flat-colour images hold no
    object, so the spatial judge detects nothing: every cell says "not detected", none is red."""
    d, html = report
    res = chromium(f"--user-data-dir={d / 'profile-answer'}", "--dump-dom", html.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    sections = re.findall(r'<section id="([a-z]+)"', dom)
    assert sections[0] == "answer" and sections.index("summary") == 1
    answer = re.search(r'<section id="answer">.*?</section>', dom, re.S).group(0)
    assert re.findall(r'<table class="answer" data-key="([^"]+)"', answer) == ["spatial_pair_acc"]
    chart = re.search(r'<svg[^>]*class="chart".*?</svg>', answer, re.S).group(0)
    assert chart.count("not detected") == 2  # one per run, no dot
    heat = re.search(r'<table class="heatmap".*?</table>', answer, re.S).group(0)
    assert heat.count("<tr><td>") == 3  # above, on, riding
    cells = re.findall(r'<td class="(\w*)"[^>]*>([^<]*)<span', heat)
    assert cells and all(c == ("undetected", "not detected") for c in cells)
    assert 'class="below"' not in answer


def test_screenshot(report):
    d, html = report
    shot = d / "shot.png"
    res = chromium(f"--user-data-dir={d / 'profile-shot'}", "--hide-scrollbars", "--window-size=1280,1600",
                   f"--screenshot={shot}", html.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
    # text, tables and coloured bars, not a blank page: many colours, none covering everything
    assert len(colours) > 200 and max(n for n, _ in colours) < 0.95 * 1280 * 1600


# --- what a reader sees: nothing clipped, the answer first (Playwright drives the same chromium) ---

#: every non-empty <text> of every chart whose box leaves its chart's box (px, 1 px tolerance)
CLIPPED_JS = """() => {
  const out = [];
  document.querySelectorAll('svg.chart').forEach((svg, i) => {
    const box = svg.getBoundingClientRect();
    svg.querySelectorAll('text').forEach(t => {
      const r = t.getBoundingClientRect();
      if (t.textContent.trim() && (r.left < box.left - 1 || r.right > box.right + 1
                                   || r.top < box.top - 1 || r.bottom > box.bottom + 1))
        out.push([i, t.textContent]);
    });
  });
  return out;
}"""


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        # the page's own CSP forbids scripts; the test's measuring script is let through
        yield b.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        b.close()


def test_no_chart_text_is_clipped(report, page):
    """A run name of 41 characters (the hostile one) in a legend, rotated predicate labels,
    titles: every chart text ends inside its chart (a fixed right margin cut legends short)."""
    d, html = report
    page.goto(html.as_uri())
    assert page.evaluate("document.querySelectorAll('svg.chart').length") > 3
    assert page.evaluate(CLIPPED_JS) == []
    page.screenshot(path=str(d / "report-full.png"), full_page=True)


def test_curves_page_in_the_browser(tmp_path, page):
    """Two arms, 7 loss terms and 5 metrics: the relation accuracy is the first panel, on the
    first screen; panels sit two or more to a row; no chart text is clipped."""
    from relbench.reports.curves import build_curves

    lab = tmp_path / "lab"
    for arm in ("a_gen", "d_gen_rank_dropout_relation"):
        d = lab / "arms" / arm
        d.mkdir(parents=True)
        logs = [{"step": s, "loss": 1.2 - s / 400, "l_gen": 1 - s / 400, "l_rank": 0.2, "rank_acc": 0.5,
                 "graph_sep": 0.1, "l_clip": 0.3, "clip_acc": 0.6} for s in range(10, 201, 10)]
        (d / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in logs))
        e = d / "eval" / "step-0000100"
        e.mkdir(parents=True)
        metrics = {k: {"value": 0.4, "ci_low": 0.3, "ci_high": 0.5, **({"chance": 0.28} if "acc" in k else {})}
                   for k in ("spatial_pos_detected", "spatial_pos_acc", "spatial_pair_acc", "mse_mean", "mse_std")}
        (e / "summary.json").write_text(json.dumps({"metrics": {"spatial": {"specs": {
            "spatial_pair_acc": {"headline": True}}}}, "runs": {"graph_lora": {"metrics": metrics}}}))
    build_curves([lab], tmp_path / "curves.html")
    page.goto((tmp_path / "curves.html").as_uri())
    panels = page.evaluate("""() => [...document.querySelectorAll('figure.panel')].map(f => {
        const r = f.getBoundingClientRect(); return [f.dataset.key, r.top, r.left, r.width]; })""")
    assert len(panels) == 12 and panels[0][0] == "spatial_pair_acc"
    assert panels[0][1] + 300 < 900  # on the first screen
    assert panels[1][1] == panels[0][1] and panels[1][2] > panels[0][2]  # side by side
    assert page.evaluate(CLIPPED_JS) == []
    page.screenshot(path=str(tmp_path / "curves.png"), full_page=True)
    assert page.evaluate("document.body.scrollHeight") < 6 * 330  # 12 panels, two a row (18 rows of ~840 px before)
