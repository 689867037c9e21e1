"""`relbench annotate` in a real browser: Debian's chromium driven by Playwright.

Server: answer with keys and a click, undo one, kill the server (SIGKILL) and restart it (the
open page's next key press gets the page back with a message), finish,
then check the answer files, the resumption, a hostile triple name shown as text, that the page
requested nothing but its own server, and the agreement numbers computed from the answers.
Offline page: two remote annotators answer a page exported for each (keys, undo, reload),
download their answers, which are imported and agree with each other (Krippendorff's alpha) and
with the exact spatial judge. Skipped where no chromium exists, except under CI=true (.ci/run installs one).
"""

import json

import pytest

from annotate_helpers import HOSTILE_TEXT, Server, fresh_copy, make_hostile_run, make_shapes_run, page_items
from conftest import CHROMIUM, run_cli
from relbench.annotate.plan import build_plan
from relbench.results.answers import annotator_answers, answers_path, read_events

pytestmark = pytest.mark.browser  # skipped without a chromium, except under CI=true (conftest.py)
N = 14


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return make_shapes_run(tmp_path_factory.mktemp("shapes")), make_hostile_run(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def truthful(item) -> int:
    """What a careful person answers: shapes_oracle and the references draw their own graph,
    shapes_inverse draws the other one; a flat-colour test image shows nothing (can't tell)."""
    if item.run == "flat":
        return 0
    right = item.side if item.run in ("oracle", "reference") else {"pos": "neg", "neg": "pos"}[item.side]
    return 1 if item.order[0] == right else 2


def wait_progress(page, n):
    page.wait_for_function("n => document.getElementById('progress').textContent.startsWith(n + ' / ')", arg=n)


@pytest.mark.slow
def test_server_keys_undo_kill_restart_and_hostile_text(dirs, browser, tmp_path):
    shapes, hostile = dirs
    plan = build_plan([shapes, hostile], n=N).for_annotator("ann1")  # the order ann1's server shows
    assert any(it.run == "flat" and HOSTILE_TEXT in it.caption(1) + it.caption(2) for it in plan.items)
    srv = Server([shapes, hostile], "ann1", N).start()
    requests: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    seen_hostile = 0

    def current():
        return plan.by_id[page.locator("input[name=item]").first.input_value()]

    def check_item(it):
        nonlocal seen_hostile
        captions = [page.inner_text("#choice-1"), page.inner_text("#choice-2")]
        assert captions[0].endswith(it.caption(1)) and captions[1].endswith(it.caption(2))
        if HOSTILE_TEXT in it.caption(1) + it.caption(2):
            seen_hostile += 1
            assert any(HOSTILE_TEXT in c for c in captions)  # shown as text...
            assert page.title() == "relbench annotate: ann1" and page.locator("#pwned").count() == 0  # ...ran nothing
        assert page.evaluate("document.getElementById('image').naturalWidth") == 64  # the image loaded

    try:
        page.goto(srv.url + "/")
        assert page.inner_text("#progress").startswith(f"0 / {N}")
        for n in range(2):  # two answers by key
            it = current()
            check_item(it)
            page.keyboard.press(str(truthful(it)))
            wait_progress(page, n + 1)
        it = current()
        check_item(it)  # every item is checked: which one holds the hostile text depends on ann1's order
        wrong = {1: 2, 2: 1, 0: 1}[truthful(it)]
        page.keyboard.press(str(wrong))  # a slip...
        wait_progress(page, 3)
        page.keyboard.press("u")  # ...undone
        wait_progress(page, 2)
        assert current() == it
        page.click(f"#choice-{truthful(it)}")  # this time with the mouse
        wait_progress(page, 3)
        check_item(current())
        page.keyboard.press(str(truthful(current())))
        wait_progress(page, 4)
        srv.kill()  # nothing answered may be lost
        stood = annotator_answers([shapes, hostile], "ann1")
        assert [a.item for a in stood] == [x.id for x in plan.items[:4]]
        assert [a.choice for a in stood] == [truthful(x) for x in plan.items[:4]]
        events = [e for d in (shapes, hostile) for e in read_events(answers_path(d, "ann1"))]
        assert sum(e.event == "undo" for e in events) == 1 and len(events) == 6
        a = stood[0]
        assert a.case_id == plan.items[0].case_id and a.run == plan.items[0].run
        assert a.image_key == plan.items[0].image_key and tuple(a.order) == plan.items[0].order and a.time

        srv.start()  # same port: the open page's next key press gets the page back, nothing lost
        assert current() == plan.items[4]
        page.keyboard.press(str(truthful(current())))
        page.wait_for_selector("#message")
        assert page.inner_text("#message").startswith("not saved: this page came from before the server restarted")
        assert page.inner_text("#progress").startswith(f"4 / {N}")
        assert current() == plan.items[4] and page.is_visible("#guide")
        for n in range(4, N):
            it = current()
            check_item(it)
            page.keyboard.press(str(truthful(it)))
            wait_progress(page, n + 1)
        assert page.is_visible("#done")
        page.screenshot(path=str(tmp_path / "done.png"))
    finally:
        srv.kill()
    assert seen_hostile >= 1
    assert all(u.startswith(srv.url + "/") for u in requests), [u for u in requests if not u.startswith(srv.url)]
    stood = annotator_answers([shapes, hostile], "ann1")
    assert sorted(a.item for a in stood) == sorted(it.id for it in plan.items)
    for it in plan.items:  # each answer sits in its own run directory's file
        d = (shapes, hostile)[it.run_dir]
        assert it.id in {e.item for e in read_events(answers_path(d, "ann1"))}

    res = run_cli("annotate", str(shapes), str(hostile), "--summarize")
    assert res.returncode == 0, res.stderr
    from relbench.results.read import load_run_dir

    s = load_run_dir(shapes).summary
    assert s["runs"]["oracle"]["metrics"]["human_acc"]["value"] == 1.0
    assert s["runs"]["inverse"]["metrics"]["human_acc"]["value"] == 0.0
    judge = s["human"]["judges"]["spatial"]["overall"]
    shown = {(it.run, it.case_id, it.side) for it in plan.items if it.run != "flat"}
    assert judge["n"] == len(shown) and judge["share"] == 1.0
    h = load_run_dir(hostile).summary["runs"]["flat"]["metrics"]
    assert h["human_acc"]["value"] == 0.5 and h["human_cant_tell"]["value"] == 1.0


def answer_offline(browser, html, name, downloads):
    """One remote annotator, on the page exported for them: keys (with an undo and a reload), download."""
    ctx = browser.new_context(accept_downloads=True)
    page = ctx.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri())
    assert page.inner_text("#who") == name
    payload = json.loads(page.inner_text("#plan"))
    items = payload["items"]
    shown = page_items(html, downloads["plan"])
    page.keyboard.press("1")
    page.keyboard.press("u")
    wait_progress(page, 0)
    for n, it in enumerate(items):
        if n == 3:
            page.reload()  # answers so far are kept by the page
            wait_progress(page, 3)
        assert page.inner_text("#choice-1 .text") == it["captions"][0]
        page.keyboard.press(str(truthful(shown[n])))
        wait_progress(page, n + 1)
    assert page.is_visible("#done")
    with page.expect_download() as dl:
        page.click("#download")
    out = downloads["dir"] / f"{name}.json"
    dl.value.save_as(out)
    assert all(u == html.as_uri() or u.startswith("data:") for u in requests), requests
    ctx.close()
    return out


@pytest.mark.slow
def test_exported_page_answered_and_imported(dirs, browser, tmp_path):
    src_shapes, src_hostile = dirs
    shapes, hostile = tmp_path / "shapes", tmp_path / "hostile"
    for s, d in ((src_shapes, shapes), (src_hostile, hostile)):
        fresh_copy(s, d)
    plan = build_plan([shapes, hostile], n=N)
    ctx = {"plan": plan, "dir": tmp_path}
    files = []
    for name in ("remote1", "remote2"):
        res = run_cli("annotate", str(shapes), str(hostile), "--n", str(N), "--annotator", name,
                      "--export", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        files.append(answer_offline(browser, next((tmp_path / name).glob("*.html")), name, ctx))
    for f in files:
        res = run_cli("annotate", str(shapes), str(hostile), "--import", str(f))
        assert res.returncode == 0, res.stderr
    for name in ("remote1", "remote2"):
        stood = annotator_answers([shapes, hostile], name)
        assert sorted(a.item for a in stood) == sorted(it.id for it in plan.items)
        own = plan.for_annotator(name).by_id  # truthful keys follow the annotator's own caption order
        assert all(a.choice == truthful(own[a.item]) and a.source.startswith("import:") for a in stood)
    res = run_cli("annotate", str(shapes), str(hostile), "--import", str(files[0]))
    assert res.returncode == 2 and "already imported" in res.stderr
    res = run_cli("compare", str(shapes), "-o", str(tmp_path / "cmp"))
    assert res.returncode == 0, res.stderr
    assert "Krippendorff" in res.stdout and "spatial" in res.stdout
    human = json.loads((tmp_path / "cmp.json").read_text())["human"][str(shapes)]
    assert human["inter_annotator"]["value"] == 1.0 and human["inter_annotator"]["annotators"] == 2
    assert human["judges"]["spatial"]["overall"]["share"] == 1.0
    assert set(human["annotators"]) == {"remote1", "remote2"}


@pytest.mark.slow
def test_predicate_question_page_answered_by_keys_and_imported(dirs, browser, tmp_path):
    """--question predicate: the page builds one button per candidate (text only), keys pick
    them, and the imported answers make the human confusion matrix."""
    shapes = fresh_copy(dirs[0], tmp_path / "shapes")
    res = run_cli("annotate", str(shapes), "--n", str(N), "--question", "predicate", "--annotator", "p1",
                  "--export", str(tmp_path / "p1"))
    assert res.returncode == 0, res.stderr
    html = next((tmp_path / "p1").glob("*.html"))
    plan = build_plan([shapes], n=N, question="predicate")
    shown = page_items(html, plan)
    ctx = browser.new_context(accept_downloads=True)
    page = ctx.new_page()
    page.goto(html.as_uri())
    for n, it in enumerate(shown):
        assert page.inner_text("#prompt") == it.prompt
        assert page.inner_text("#choice-2 .text") == it.caption(2)
        assert page.locator("#options button").count() == len(it.choices)
        page.keyboard.press(str(it.choices.index(it.predicate) + 1))  # a person who sees what was asked
        wait_progress(page, n + 1)
    with page.expect_download() as dl:
        page.click("#download")
    out = tmp_path / "p1.json"
    dl.value.save_as(out)
    ctx.close()
    res = run_cli("annotate", str(shapes), "--import", str(out))
    assert res.returncode == 0, res.stderr
    from relbench.results.read import load_run_dir

    rows = [(run, asked, row) for run, m in load_run_dir(shapes).summary["runs"].items()
            for asked, row in (m.get("confusion", {}).get("human", {}).get("rows") or {}).items()]
    assert sum(row["n"] for _, _, row in rows) == len([it for it in shown if it.kind != "repeat"])
    assert all(row["seen"][asked] == 1.0 for _, asked, row in rows)
