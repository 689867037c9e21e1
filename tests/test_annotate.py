"""`relbench annotate` without a browser: the sampling plan, answer files, the server's refusals
(over real HTTP) and the import of offline answers, each refusal one line with nothing merged."""

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import pytest

from annotate_helpers import Server, fresh_copy, make_shapes_run
from conftest import run_cli
from relbench.annotate import offline
from relbench.annotate.plan import build_plan
from relbench.annotate.storage import (
    Undo, annotator_answers, answer_for, answers_path, append_event, check_annotator, effective, read_events,
)
from relbench.errors import UserError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_shapes_run(tmp_path_factory.mktemp("annotate"))


# --- plan ---------------------------------------------------------------------------------------


def test_plan_is_deterministic_stratified_with_references_and_repeats(run_dir):
    plan = build_plan([run_dir], n=30, seed=0)
    assert plan == build_plan([run_dir], n=30, seed=0) and plan.id == build_plan([run_dir], n=30, seed=0).id
    assert build_plan([run_dir], n=30, seed=1).id != plan.id
    kinds = Counter(it.kind for it in plan.items)
    # 9 predicates x 1 triple x 1 seed; oracle and inverse give 36 images, references 18 on 9
    # triples: one reference per triple (MIN_TRIPLES = 10 wanted), 3 repeats, 18 left
    assert len(plan.items) == 30 and kinds == {"main": 18, "reference": 9, "repeat": 3}
    assert plan.notes == ("the reference run has images of only 9 triples: the human ceiling has an interval from 10 on",)
    main = [it for it in plan.items if it.kind == "main"]
    # stratified: 18 images over 18 (run, predicate) strata -> every stratum once
    per_stratum = Counter((it.run, it.predicate) for it in main)
    assert len(per_stratum) == 18 and max(per_stratum.values()) == 1
    assert len({it.id for it in plan.items}) == 30
    for rep in (it for it in plan.items if it.kind == "repeat"):
        orig = plan.by_id[rep.copy_of]
        assert plan.items.index(rep) > plan.items.index(orig)
        assert rep.image_key == orig.image_key and rep.order == orig.order[::-1]  # captions swapped
    assert {it.run for it in plan.items if it.kind == "reference"} == {"reference"}
    orders = Counter(it.order for it in plan.items)
    assert set(orders) == {("pos", "neg"), ("neg", "pos")}
    it = main[0]
    assert it.caption(1) == (it.text_pos if it.order[0] == "pos" else it.text_neg)
    assert it.answer_of(0) == "cant_tell" and it.answer_of(2) == it.order[1]


def test_plan_caps_at_what_exists_and_refuses_bad_input(run_dir, tmp_path):
    plan = build_plan([run_dir], n=1000)
    # 36 generated + 18 references (reference_share 0.1 -> 18 of them fit), repeats 100 wanted, half of the items allowed
    assert Counter(it.kind for it in plan.items)["main"] == 36
    with pytest.raises(UserError, match="at least 1"):
        build_plan([run_dir], n=0)
    with pytest.raises(UserError, match="not a run directory"):
        build_plan([tmp_path])


def test_each_annotator_has_an_order_of_their_own(run_dir):
    """Same items and plan id for everyone; item and caption order seeded by the name, so a
    shared key habit ("1 when unsure") is not read as agreement."""
    plan = build_plan([run_dir], n=30, seed=0)
    mine = {name: plan.for_annotator(name) for name in ("alice", "bob", "carol", "dave")}
    assert mine["alice"] == plan.for_annotator("alice")  # a restarted server shows the same order
    for p in mine.values():
        assert p.id == plan.id and sorted(p.by_id) == sorted(plan.by_id)
        assert all(p.by_id[i].kind == plan.by_id[i].kind and p.by_id[i].image_key == plan.by_id[i].image_key
                   for i in plan.by_id)
        half = sum(it.kind != "repeat" for it in p.items) // 2  # originals before it, repeats from it on
        for rep in (it for it in p.items if it.kind == "repeat"):  # still later, captions swapped
            orig = p.by_id[rep.copy_of]
            assert p.items.index(orig) < half <= p.items.index(rep)
            assert rep.order == orig.order[::-1]
    sequences = {tuple(it.id for it in p.items) for p in mine.values()}
    assert len(sequences) == 4
    # each item's caption order is drawn per annotator: 30 items x 4 people, both orders everywhere
    flips = sum(len({mine[n].by_id[i].order for n in mine}) == 2 for i in plan.by_id)
    assert flips > len(plan.by_id) // 2


def test_exports_and_imports_keep_the_annotators_order(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    pages = {}
    for name in ("alice", "bob"):
        res = run_cli("annotate", str(d), "--n", "8", "--annotator", name, "--export", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        html = next((tmp_path / name).glob("*.html")).read_text()
        pages[name] = json.loads(html.split('<script type="application/json" id="plan">')[1].split("</script>")[0])
    shown = {name: [(it["id"], tuple(it["order"])) for it in p["items"]] for name, p in pages.items()}
    assert shown["alice"] != shown["bob"] and sorted(i for i, _ in shown["alice"]) == sorted(i for i, _ in shown["bob"])
    assert shown["alice"] == [(it.id, it.order) for it in build_plan([d], n=8).for_annotator("alice").items]
    p = pages["alice"]
    sub = {"format": "relbench-annotations/1", "plan": p["plan"], "export": p["export"], "token": p["token"],
           "annotator": "alice", "answers": [{"item": it["id"], "image_key": it["image_key"], "order": it["order"],
                                              "choice": 1, "time": "2026-01-01T00:00:00Z"} for it in p["items"]]}
    bobs = {i: o for i, o in shown["bob"]}
    swapped = next(k for k, (i, o) in enumerate(shown["alice"]) if bobs[i] != o)
    wrong = json.loads(json.dumps(sub))
    wrong["answers"][swapped]["order"] = list(bobs[wrong["answers"][swapped]["item"]])  # bob's order, not hers
    _import_fails(d, tmp_path, wrong, "caption order")
    f = tmp_path / "alice.json"
    f.write_text(json.dumps(sub))
    assert run_cli("annotate", str(d), "--import", str(f)).returncode == 0
    stood = {a.item: a for a in annotator_answers([d], "alice")}
    assert all(stood[i].answer == o[0] for i, o in shown["alice"])  # key 1: her first caption


@pytest.fixture(scope="module")
def two_triples_run(tmp_path_factory):
    return make_shapes_run(tmp_path_factory.mktemp("annotate2"), triples=2)


def test_reference_items_are_on_distinct_triples(two_triples_run, tmp_path):
    """The human ceiling is bootstrapped over triples and needs MIN_TRIPLES (10) of them for an
    interval: the default plan's references are 10 images on 10 triples whatever the seed."""
    for seed in range(20):
        plan = build_plan([two_triples_run], n=100, seed=seed)
        refs = [it for it in plan.items if it.kind == "reference"]
        assert len(refs) == 10 and len({it.triple_id for it in refs}) == 10, seed
        assert not plan.notes
        assert len({it.predicate for it in refs}) == 9  # still spread over the predicates
    small = build_plan([two_triples_run], n=12)
    assert Counter(it.kind for it in small.items)["reference"] == 1
    assert small.notes == ("--n 12 leaves room for 1 reference image(s); the human ceiling has an interval "
                           "from 10 on (--n 20 or more)",)
    d = fresh_copy(two_triples_run, tmp_path / "run")
    res = run_cli("annotate", str(d), "--n", "12", "--export", str(tmp_path / "out"))
    assert res.returncode == 0 and res.stdout.startswith("note: --n 12 leaves room for 1 reference image(s)"), res.stderr


def test_human_ceiling_has_an_interval_at_the_defaults(two_triples_run, tmp_path):
    from relbench.compare import load_run_dir

    d = fresh_copy(two_triples_run, tmp_path / "run")
    plan = build_plan([d], seed=3)
    for it in plan.items:
        if it.kind == "reference":  # a careful person on the reference images
            append_event(answers_path(d, "a"), answer_for(plan, it, "a", 1 if it.order[0] == it.side else 2))
    ceiling = load_run_dir(d).summary["human"]["ceiling"]
    assert ceiling["n"] == ceiling["n_triples"] == 10
    assert ceiling["value"] == ceiling["ci_low"] == ceiling["ci_high"] == 1.0  # constant: the interval is the point


# --- answer files -------------------------------------------------------------------------------


def test_answers_append_undo_and_torn_line(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=6)
    a, b = plan.items[0], plan.items[1]
    path = answers_path(d, "ann")
    append_event(path, answer_for(plan, a, "ann", 1))
    append_event(path, answer_for(plan, b, "ann", 0))
    append_event(path, Undo(annotator="ann", item=b.id, time="t"))
    append_event(path, answer_for(plan, b, "ann", 2))
    with open(path, "a") as f:
        f.write('{"event":"answer","annot')  # killed mid-write: never acknowledged
    stood = effective(read_events(path))
    assert [(x.item, x.choice) for x in stood] == [(a.id, 1), (b.id, 2)]
    assert stood[1].answer == b.order[1] and stood[1].correct == float(b.order[1] == b.side)
    assert [x.item for x in annotator_answers([d], "ann")] == [a.id, b.id]
    for bad in ("../x", "a b", "", "x" * 33, "<script>"):
        with pytest.raises(UserError, match="not allowed"):
            check_annotator(bad)


# --- server over HTTP ---------------------------------------------------------------------------


def _post(url, data, headers=None):
    req = urllib.request.Request(url, urllib.parse.urlencode(data).encode(), headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_server_refuses_what_it_did_not_serve(run_dir, tmp_path):
    pytest.importorskip("starlette")
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=6).for_annotator("ann")  # the order this annotator's server shows
    srv = Server([d], "ann", 6).start()
    try:
        status, body, headers = _get(srv.url + "/")
        assert status == 200
        assert "default-src 'none'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
        page = body.decode()
        token = page.split('name="token" value="')[1].split('"')[0]
        shown = plan.items[0]
        assert f'value="{shown.id}"' in page
        # an item of the plan the server has not shown, a foreign id, a path: refused, nothing stored
        assert _post(srv.url + "/answer", {"token": token, "item": plan.items[1].id, "choice": "1"})[0] == 409
        assert _post(srv.url + "/answer", {"token": token, "item": "../../etc/passwd", "choice": "1"})[0] == 409
        assert _post(srv.url + "/answer", {"token": "forged", "item": shown.id, "choice": "1"})[0] == 403
        assert _post(srv.url + "/answer", {"token": token, "item": shown.id, "choice": "7"})[0] == 400
        assert _get(srv.url + "/image/" + plan.items[1].id)[0] == 404  # not served yet
        assert _get(srv.url + "/image/..%2F..%2Fsummary.json")[0] == 404
        assert _get(srv.url + "/static/..%2F..%2Fhuman.py")[0] == 404
        assert _get(srv.url + "/", {"Host": "evil.example:80"})[0] == 400  # DNS rebinding
        assert not answers_path(d, "ann").exists()
        status, png, _ = _get(srv.url + "/image/" + shown.id)
        assert status == 200 and png == plan.image_path(shown).read_bytes()
        assert _post(srv.url + "/answer", {"token": token, "item": shown.id, "choice": "2"})[0] in (200, 303)
        assert _post(srv.url + "/answer", {"token": token, "item": shown.id, "choice": "1"})[0] == 409  # answered
        stood = annotator_answers([d], "ann")
        assert [(x.item, x.choice, x.answer, tuple(x.order)) for x in stood] == [(shown.id, 2, shown.order[1], shown.order)]
        assert stood[0].run == shown.run and stood[0].case_id == shown.case_id and stood[0].image_key == shown.image_key
    finally:
        srv.kill()


def test_cli_refuses_bad_annotator_and_missing_run_dir(tmp_path):
    res = run_cli("annotate", str(tmp_path), "--annotator", "../../x")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not allowed" in res.stderr
    res = run_cli("annotate", str(tmp_path), "--annotator", "ok")
    assert res.returncode == 2 and "not a run directory" in res.stderr and "Traceback" not in res.stderr


# --- offline export / import --------------------------------------------------------------------


def _submission(plan, d, annotator="remote", choices=None):
    ledger = json.loads((d / "human" / "exports.json").read_text())
    export_id = next(k for k, v in ledger["exports"].items() if v["plan"] == plan.id)
    return {"format": "relbench-annotations/1", "plan": plan.id, "export": export_id,
            "token": offline._token(ledger["secret"], export_id, plan.id), "annotator": annotator,
            "answers": [{"item": it.id, "image_key": it.image_key, "order": list(it.order), "choice": c,
                         "time": f"2026-01-01T00:00:{i:02d}Z"}
                        for i, (it, c) in enumerate(zip(plan.items, choices or [1] * len(plan.items)))]}


def _import_fails(d, tmp_path, sub, match):
    f = tmp_path / "answers.json"
    f.write_text(sub if isinstance(sub, str) else json.dumps(sub))
    before = {p.name: p.read_bytes() for p in (d / "human").iterdir()}
    res = run_cli("annotate", str(d), "--import", str(f))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and match in res.stderr, res.stderr
    assert {p.name: p.read_bytes() for p in (d / "human").iterdir()} == before  # nothing half-merged


def test_export_is_self_contained_and_import_validates(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    res = run_cli("annotate", str(d), "--n", "8", "--export", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    page = next((tmp_path / "out").glob("*.html")).read_text()
    assert "http://" not in page and "https://" not in page and 'src="/' not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    plan = build_plan([d], n=8)
    assert page.count("data:image/png;base64,") == len(plan.items)
    good = _submission(plan, d)

    other = build_plan([d], n=8, seed=5)
    foreign_key = next(it.image_key for it in other.items if it.image_key not in {x.image_key for x in plan.items})
    cases = [
        ("{not json", "not JSON"),
        ({**good, "answers": []}, "answers"),
        ({**good, "annotator": "../evil"}, "annotator"),
        ({**good, "token": "0" * 64}, "the file was altered"),
        ({**good, "plan": "0123456789abcdef"}, "the file was altered"),
        ({**good, "export": "feedfeedfeedfeed"}, "was not written by"),
    ]
    for mutate, match in (
        (lambda a: a.update(item="ffffffffffffffff"), "unknown item"),
        (lambda a: a.update(image_key=foreign_key), "another run's images"),
        (lambda a: a.update(order=a["order"][::-1]), "caption order"),
        (lambda a: a.update(choice=3), "choice"),
        (lambda a: a.update(time="yesterday"), "time"),
    ):
        sub = json.loads(json.dumps(good))
        mutate(sub["answers"][-1])  # the last answer is bad: the good ones before it must not land
        cases.append((sub, match))
    dup = json.loads(json.dumps(good))
    dup["answers"].append(dict(dup["answers"][0]))
    cases.append((dup, "answered twice"))
    (d / "human").mkdir(exist_ok=True)
    for sub, match in cases:
        _import_fails(d, tmp_path, sub, match)
    assert not (d / "human" / "remote.jsonl").exists()

    f = tmp_path / "good.json"
    f.write_text(json.dumps(good))
    res = run_cli("annotate", str(d), "--import", str(f))
    assert res.returncode == 0, res.stderr
    stood = annotator_answers([d], "remote")
    assert [a.item for a in stood] == [it.id for it in plan.items]
    digest = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    assert {a.source for a in stood} == {f"import:{digest}"}
    assert [a.answer for a in stood] == [it.order[0] for it in plan.items]
    _import_fails(d, tmp_path, good, "already imported")
    again = json.loads(json.dumps(good))
    again["answers"] = again["answers"][:2]  # another file, same items: a duplicate submission
    _import_fails(d, tmp_path, again, "already has an answer")
    # the imported answers are the human judge a reader computes
    from relbench.compare import load_run_dir

    summary = load_run_dir(d).summary
    assert summary["human"]["n_answers"] == sum(it.kind != "repeat" for it in plan.items)


def test_cli_refuses_a_port_in_use(run_dir):
    pytest.importorskip("starlette")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        res = run_cli("annotate", str(run_dir), "--annotator", "ann", "--port", str(s.getsockname()[1]))
    assert res.returncode == 2 and "cannot listen on 127.0.0.1" in res.stderr and res.stderr.count("\n") == 1


def test_one_writer_per_annotator_server_and_import(run_dir, tmp_path):
    """A server holds its annotator's lock: a second server of that name and an import of that
    name's answers are refused (one line, nothing merged) until it stops."""
    pytest.importorskip("starlette")
    d = fresh_copy(run_dir, tmp_path / "run")
    assert run_cli("annotate", str(d), "--n", "8", "--export", str(tmp_path / "out")).returncode == 0
    plan = build_plan([d], n=8)
    f = tmp_path / "answers.json"
    f.write_text(json.dumps(_submission(plan, d, annotator="ann")))
    srv = Server([d], "ann", 8).start()
    try:
        res = run_cli("annotate", str(d), "--annotator", "ann", "--n", "8", "--port", str(srv.port + 1),
                      timeout=60)  # a second server that is not refused serves forever
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "one writer per annotator" in res.stderr, res.stderr
        assert f"relbench annotate --annotator ann (port {srv.port})" in res.stderr
        _import_fails(d, tmp_path, json.loads(f.read_text()), "one writer per annotator")
        # another annotator's answers are no conflict
        other = tmp_path / "other.json"
        other.write_text(json.dumps(_submission(plan, d, annotator="bob")))
        assert run_cli("annotate", str(d), "--import", str(other)).returncode == 0
    finally:
        srv.kill()
    res = run_cli("annotate", str(d), "--import", str(f))  # the killed server's lock died with it
    assert res.returncode == 0, res.stderr
    assert len(annotator_answers([d], "ann")) == len(plan.items)
    assert not list((d / "human").glob(".*.lock"))


def test_page_after_a_restart_and_its_instructions(run_dir, tmp_path):
    """A key press on a page the previous server process rendered gets the page back with a
    message (nothing saved), not a bare 403; the page says how to answer, for its predicates."""
    pytest.importorskip("starlette")
    from relbench.annotate.guide import MEANINGS

    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=6).for_annotator("ann")
    srv = Server([d], "ann", 6).start()
    try:
        page = _get(srv.url + "/")[1].decode()
        old_token = page.split('name="token" value="')[1].split('"')[0]
        assert '<details class="guide" id="guide" open>' in page  # open before the first answer
        assert "the camera&#39;s viewpoint" in page and "Choose can&#39;t tell (0) when an object" in page
        shown = {m.split("</dt>")[0] for m in page.split("<dt>")[1:]}
        used = {it.predicate for it in plan.items}
        assert used <= shown and "eating" not in shown  # the shapes suite has no eating
        assert all(f"<dt>{p}</dt><dd>{MEANINGS[p]}</dd>" in page for p in used)
        srv.kill()
        srv.start()  # same port, a new process with a new form token
        status, body = _post(srv.url + "/answer", {"token": old_token, "item": plan.items[0].id, "choice": "1"})
        assert status == 403 and "not saved: this page came from before the server restarted" in body
        new_token = body.split('name="token" value="')[1].split('"')[0]
        assert new_token != old_token and f'value="{plan.items[0].id}"' in body  # the same item, answerable
        status, body = _post(srv.url + "/undo", {"token": old_token})
        assert status == 403 and 'id="message"' in body and "<form" in body
        assert not answers_path(d, "ann").exists()
        assert _post(srv.url + "/answer", {"token": new_token, "item": plan.items[0].id, "choice": "1"})[0] in (200, 303)
        assert len(annotator_answers([d], "ann")) == 1
        page = _get(srv.url + "/")[1].decode()
        assert '<details class="guide" id="guide">' in page  # out of the way once answering
    finally:
        srv.kill()
    res = run_cli("annotate", str(d), "--n", "6", "--export", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    offline_page = next((tmp_path / "out").glob("*.html")).read_text()
    assert "How to answer" in offline_page and "the camera&#39;s viewpoint" in offline_page


def test_guide_explains_the_predicates_of_the_captions():
    from relbench.annotate.guide import FALLBACK, MEANINGS, meanings

    # a predicate-replacement negative brings a second predicate; "sitting on" is not also "on"
    got = meanings({"riding", "juggling"}, ["dog riding horse", "dog sitting on horse", "cup to the left of plate"])
    assert got == [("juggling", FALLBACK.format(name="juggling")), ("left of", MEANINGS["left of"]),
                   ("riding", MEANINGS["riding"]), ("sitting on", MEANINGS["sitting on"])]
