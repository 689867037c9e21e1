"""`relbench annotate` without a browser: the sampling plan, answer files, the server's refusals
(over real HTTP) and the import of offline answers, each refusal one line with nothing merged."""

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import pytest

from annotate_helpers import (
    Server, fresh_copy, make_hostile_run, make_shapes_run, page_items, page_payload, submission,
)
from conftest import run_cli
from relbench.annotate import offline
from relbench.annotate.plan import build_plan
from relbench.results.answers import (
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
    """Each annotator's page shows the plan's items in that annotator's own item and caption
    order, and the import maps a key press back through that same order."""
    d = fresh_copy(run_dir, tmp_path / "run")
    pages = {}
    for name in ("alice", "bob"):
        res = run_cli("annotate", str(d), "--n", "8", "--annotator", name, "--export", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        pages[name] = next((tmp_path / name).glob("*.html"))
    plan = build_plan([d], n=8)
    shown = {name: page_items(html, plan) for name, html in pages.items()}
    assert [it.id for it in shown["alice"]] != [it.id for it in shown["bob"]]
    assert sorted(it.id for it in shown["alice"]) == sorted(it.id for it in shown["bob"])
    own = plan.for_annotator("alice").items
    assert [it.id for it in shown["alice"]] == [it.id for it in own]
    assert [x["captions"] for x in page_payload(pages["alice"])["items"]] == [[it.caption(1), it.caption(2)] for it in own]
    bobs = {it.id: it.order for it in plan.for_annotator("bob").items}
    assert any(bobs[it.id] != it.order for it in own)  # caption order too, not only item order
    f = tmp_path / "alice.json"
    f.write_text(json.dumps(submission(pages["alice"], [1] * len(own))))
    assert run_cli("annotate", str(d), "--import", str(f)).returncode == 0, "import"
    stood = {a.item: a for a in annotator_answers([d], "alice")}
    assert all(stood[it.id].answer == it.order[0] for it in own)  # key 1: her first caption


@pytest.fixture(scope="module")
def two_triples_run(tmp_path_factory):
    return make_shapes_run(tmp_path_factory.mktemp("annotate2"), triples=2)


def test_reference_items_are_on_distinct_triples(two_triples_run, tmp_path):
    """The human ceiling is bootstrapped over triples and needs MIN_TRIPLES (10) of them for an
    interval: the default plan's references are 10 images on 10 triples whatever the seed."""
    for seed in range(20):
        plan = build_plan([two_triples_run], n=100, seed=seed)
        refs = [it for it in plan.items if it.kind == "reference"]
        assert len(refs) == 10 and len({it.item_id for it in refs}) == 10, seed
        assert not plan.notes
        assert len({it.predicate for it in refs}) == 9  # still spread over the predicates
    small = build_plan([two_triples_run], n=12)
    assert Counter(it.kind for it in small.items)["reference"] == 1
    assert small.notes == ("--n 12 leaves room for 1 reference image(s); the human ceiling has an interval "
                           "from 10 on (--n 20 or more)",)
    d = fresh_copy(two_triples_run, tmp_path / "run")
    res = run_cli("annotate", str(d), "--n", "12", "--annotator", "ann", "--export", str(tmp_path / "out"))
    assert res.returncode == 0 and res.stdout.startswith("note: --n 12 leaves room for 1 reference image(s)"), res.stderr


def test_human_ceiling_has_an_interval_at_the_defaults(two_triples_run, tmp_path):
    from relbench.results.read import load_run_dir

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
    for bad in ("../x", "a b", "", "x" * 33, "<script>", "ann\n"):
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


def _raw_post(url, body: bytes, chunked=False):
    """A POST as a hostile page could send it (http.client: no form encoding of ours)."""
    import http.client

    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        if chunked:
            conn.request("POST", u.path, body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", u.path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode()
    except (BrokenPipeError, ConnectionResetError):  # refused before the body was read: look at the reply
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_server_hardening(run_dir, tmp_path):
    """On any loopback address the Host is checked; a body is read with a cap; malformed forms
    are a 400, never a 500; images carry no file times."""
    pytest.importorskip("starlette")
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=6).for_annotator("ann")  # the order ann's server shows
    srv = Server([d], "ann", 6, host="127.0.0.2").start()
    try:
        status, body, _ = _get(srv.url + "/")
        assert status == 200
        token = body.decode().split('name="token" value="')[1].split('"')[0]
        shown = plan.items[0]
        assert _get(srv.url + "/", {"Host": "evil.example"})[0] == 400  # DNS rebinding onto 127.0.0.2
        status, _, headers = _get(srv.url + "/image/" + shown.id)
        assert status == 200 and not {"last-modified", "etag"} & {k.lower() for k in headers}
        form = urllib.parse.urlencode({"token": token, "item": shown.id, "choice": "1"})
        big = (form + "&pad=" + "x" * 300_000).encode()
        assert _raw_post(srv.url + "/answer", big)[0] == 413
        assert _raw_post(srv.url + "/answer", big, chunked=True)[0] == 413  # no Content-Length to trust
        assert _post(srv.url + "/answer", {"token": "\u00e9" * 32, "item": shown.id, "choice": "1"})[0] == 400
        assert _raw_post(srv.url + "/answer", (form + "".join(f"&f{i}=1" for i in range(9))).encode())[0] == 400
        assert _raw_post(srv.url + "/undo", b"token=%ff%fe")[0] == 400
        assert not answers_path(d, "ann").exists()
        assert _raw_post(srv.url + "/answer", form.encode())[0] == 303  # the page's own form still works
        assert [a.item for a in annotator_answers([d], "ann")] == [shown.id]
    finally:
        srv.kill()


def test_cli_refuses_bad_annotator_and_missing_run_dir(tmp_path):
    res = run_cli("annotate", str(tmp_path), "--annotator", "../../x")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not allowed" in res.stderr
    res = run_cli("annotate", str(tmp_path), "--annotator", "ok")
    assert res.returncode == 2 and "not a run directory" in res.stderr and "Traceback" not in res.stderr


# --- offline export / import --------------------------------------------------------------------


def _export(d, tmp_path, annotator, n=8, *more_dirs):
    out = tmp_path / f"out-{annotator}"
    res = run_cli("annotate", str(d), *map(str, more_dirs), "--n", str(n), "--annotator", annotator,
                  "--export", str(out))
    assert res.returncode == 0, res.stderr
    (html,) = out.glob("*.html")
    return html


def _import_fails(d, tmp_path, sub, match):
    f = tmp_path / "answers.json"
    f.write_text(sub if isinstance(sub, str) else json.dumps(sub))
    before = {p.name: p.read_bytes() for p in (d / "human").iterdir()}
    res = run_cli("annotate", str(d), "--import", str(f))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and match in res.stderr, res.stderr
    assert {p.name: p.read_bytes() for p in (d / "human").iterdir()} == before  # nothing half-merged


def _import(d, tmp_path, sub, name="good.json"):
    f = tmp_path / name
    f.write_text(json.dumps(sub))
    res = run_cli("annotate", str(d), "--import", str(f))
    assert res.returncode == 0, res.stderr
    return f


@pytest.mark.slow
def test_export_is_self_contained_and_import_validates(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    html = _export(d, tmp_path, "remote")
    page = html.read_text()
    assert "http://" not in page and "https://" not in page and 'src="/' not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    plan = build_plan([d], n=8)
    assert page.count("data:image/png;base64,") == len(plan.items)
    good = submission(html, [1] * len(plan.items))

    cases = [
        ("{not json", "not JSON"),
        ({**good, "answers": []}, "answers"),
        ({**good, "annotator": "../evil"}, "annotator"),
        ({**good, "token": "0" * 64}, "the file was altered"),
        ({**good, "token": "\u00e9" * 64}, "the file was altered"),  # non-ASCII: one line, not a traceback
        ({**good, "plan": "0123456789abcdef"}, "the file was altered"),
        ({**good, "export": "feedfeedfeedfeed"}, "was not written by"),
        ({**good, "format": "relbench-annotations/1"}, "an older relbench exported"),
    ]
    for mutate, match in (
        (lambda a: a.update(item="ffffffffffffffff"), "unknown item"),
        (lambda a: a.update(item=plan.items[0].id), "unknown item"),  # the plan's own id is not the page's
        (lambda a: a.update(order=["pos", "neg"]), "Extra inputs"),  # the page has no answer key to send back
        (lambda a: a.update(choice=3), "choice"),
        (lambda a: a.update(time="yesterday"), "time"),
    ):
        sub = json.loads(json.dumps(good))
        mutate(sub["answers"][-1])  # the last answer is bad: the good ones before it must not land
        cases.append((sub, match))
    dup = json.loads(json.dumps(good))
    dup["answers"].append(dict(dup["answers"][0]))
    cases.append((dup, "answered twice"))
    for sub, match in cases:
        _import_fails(d, tmp_path, sub, match)
    assert not (d / "human" / "remote.jsonl").exists()

    f = _import(d, tmp_path, good)
    stood = annotator_answers([d], "remote")
    own = plan.for_annotator("remote").items  # the order and captions remote's page showed
    assert [a.item for a in stood] == [it.id for it in own]
    digest = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    assert {a.source for a in stood} == {f"import:{digest}"}
    assert [a.answer for a in stood] == [it.order[0] for it in own]
    _import_fails(d, tmp_path, good, "already imported")
    again = json.loads(json.dumps(good))
    again["answers"] = again["answers"][:2]  # another file, same items: a duplicate submission
    _import_fails(d, tmp_path, again, "already has an answer")
    # the imported answers are the human judge a reader computes
    from relbench.results.read import load_run_dir

    summary = load_run_dir(d).summary
    assert summary["human"]["n_answers"] == sum(it.kind != "repeat" for it in plan.items)


def test_one_page_is_one_annotator(run_dir, tmp_path):
    """One person's answers, imported again under another name or flipped, would raise the
    agreement between 'annotators' who are one person."""
    d = fresh_copy(run_dir, tmp_path / "run")
    res = run_cli("annotate", str(d), "--n", "8", "--export", str(tmp_path / "anon"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--export needs --annotator" in res.stderr
    assert not (tmp_path / "anon").exists() and not (d / "human").exists()  # refused before anything is written
    html = _export(d, tmp_path, "erin")
    n = len(build_plan([d], n=8).items)
    answers = submission(html, [1] * n)
    flipped = submission(html, [2] * n)
    _import(d, tmp_path, answers)
    _import_fails(d, tmp_path, {**answers, "annotator": "frank"}, "is 'erin''s page")
    _import_fails(d, tmp_path, {**flipped, "annotator": "frank"}, "is 'erin''s page")
    _import_fails(d, tmp_path, flipped, "erin already has an answer")
    assert not (d / "human" / "frank.jsonl").exists()
    # the name is signed: a page's token does not pass for another annotator's export of the same plan
    other = submission(_export(d, tmp_path, "frank"), [2] * n)
    _import_fails(d, tmp_path, {**other, "token": answers["token"]}, "the file was altered")


def test_exported_page_holds_no_answer_key(run_dir, tmp_path):
    d = fresh_copy(run_dir, tmp_path / "run")
    plan = build_plan([d], n=8)
    html = _export(d, tmp_path, "remote")
    page, payload = html.read_text(), page_payload(html)
    assert [set(it) for it in payload["items"]] == [{"id", "image", "captions"}] * len(plan.items)
    for it in plan.items:  # plan ids are sha256 of run, case, side, image key and kind: guessable, so absent
        assert it.id not in page and it.image_key not in page
    assert '"order"' not in page and "image_key" not in page
    shown = page_items(html, plan)
    assert shown == list(plan.for_annotator("remote").items)
    assert [x["captions"] for x in payload["items"]] == [[it.caption(1), it.caption(2)] for it in shown]
    # ids are per export: a second page for the same plan names its items differently
    second = page_payload(_export(d, tmp_path, "other"))
    assert not {x["id"] for x in second["items"]} & {x["id"] for x in payload["items"]}
    # the import re-derives image and caption order from the plan
    choices = [1, 2, 0, 1, 2, 0, 1, 2][: len(plan.items)]
    _import(d, tmp_path, submission(html, choices))
    stood = {a.item: a for a in annotator_answers([d], "remote")}
    for it, c in zip(shown, choices):
        a = stood[it.id]
        assert (a.image_key, tuple(a.order), a.choice, a.answer) == (it.image_key, it.order, c, it.answer_of(c))


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    return make_hostile_run(tmp_path_factory.mktemp("hostile"))


def test_import_is_atomic_across_run_directories_and_a_retry_completes(run_dir, hostile_dir, tmp_path,
                                                                        monkeypatch):
    import errno
    import os
    import tempfile

    a, b = fresh_copy(run_dir, tmp_path / "a"), fresh_copy(hostile_dir, tmp_path / "b")
    plan = build_plan([a, b], n=14)
    per_dir = Counter(it.run_dir for it in plan.items)
    assert per_dir[0] and per_dir[1]
    html = _export(a, tmp_path, "ann", 14, b)
    f = tmp_path / "answers.json"
    f.write_text(json.dumps(submission(html, [1] * len(plan.items))))
    ledger = (a / "human" / "exports.json").read_bytes()
    files = (answers_path(a, "ann"), answers_path(b, "ann"))

    real_mkstemp, real_replace, calls = tempfile.mkstemp, os.replace, []

    def full_disk(*args, **kw):  # the disk fills up while the second answer file is written
        calls.append(kw.get("dir"))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        offline.import_answers([a, b], f)
    monkeypatch.setattr(tempfile, "mkstemp", real_mkstemp)
    assert len(calls) == 2 and not any(p.exists() for p in files)  # neither run directory changed
    assert (a / "human" / "exports.json").read_bytes() == ledger
    assert not list(a.rglob("*.tmp")) and not list(b.rglob("*.tmp"))

    renames = []

    def failing_rename(src, dst):  # an I/O error on the second rename: the first file is already in place
        if str(dst).endswith(".jsonl"):
            renames.append(dst)
            if len(renames) == 2:
                raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_rename)
    with pytest.raises(UserError, match="Input/output error"):
        offline.import_answers([a, b], f)
    monkeypatch.setattr(os, "replace", real_replace)
    first = next(p for p in files if p.exists())
    assert [p.exists() for p in files].count(True) == 1
    merged_before = len(annotator_answers([first.parent.parent], "ann"))
    assert merged_before == per_dir[files.index(first)]

    n, who, done = offline.import_answers([a, b], f)  # the same file again completes the merge
    assert (who, done, n + done) == ("ann", merged_before, len(plan.items))
    stood = annotator_answers([a, b], "ann")
    assert sorted(x.item for x in stood) == sorted(it.id for it in plan.items)  # each answer once
    with pytest.raises(UserError, match="already imported"):
        offline.import_answers([a, b], f)
    assert not list(a.rglob("*.tmp")) and not list(b.rglob("*.tmp"))


def test_export_ledger_is_never_readable_by_others(run_dir, tmp_path, monkeypatch):
    """exports.json holds the HMAC secret: 0600 from the moment it has its name."""
    import os
    import stat

    from relbench.io import atomic
    from relbench.cli import main

    d = fresh_copy(run_dir, tmp_path / "run")
    real_replace, modes = os.replace, []

    def replace(src, dst):
        if os.path.basename(dst) == "exports.json":
            modes.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(atomic, "_MODE", 0o644)  # what other files get under the usual umask 022
    assert main(["annotate", str(d), "--n", "4", "--annotator", "x", "--export", str(tmp_path / "out")]) == 0
    assert modes == [0o600] and stat.S_IMODE((d / "human" / "exports.json").stat().st_mode) == 0o600


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
    plan = build_plan([d], n=8)
    f = tmp_path / "answers.json"
    f.write_text(json.dumps(submission(_export(d, tmp_path, "ann"), [1] * len(plan.items))))
    srv = Server([d], "ann", 8).start()
    try:
        res = run_cli("annotate", str(d), "--annotator", "ann", "--n", "8", "--port", str(srv.port + 1),
                      timeout=60)  # a second server that is not refused serves forever
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "one writer per annotator" in res.stderr, res.stderr
        assert f"relbench annotate --annotator ann (port {srv.port})" in res.stderr
        _import_fails(d, tmp_path, json.loads(f.read_text()), "one writer per annotator")
        # another annotator's answers are no conflict
        other = tmp_path / "other.json"
        other.write_text(json.dumps(submission(_export(d, tmp_path, "bob"), [1] * len(plan.items))))
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
    res = run_cli("annotate", str(d), "--n", "6", "--annotator", "ann", "--export", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    offline_page = next((tmp_path / "out").glob("*.html")).read_text()
    assert "How to answer" in offline_page and "the camera&#39;s viewpoint" in offline_page


def test_guide_explains_the_predicates_of_the_captions():
    from relbench.annotate.guide import FALLBACK, MEANINGS, meanings

    # a predicate-replacement negative brings a second predicate; "sitting on" is not also "on"
    got = meanings({"riding", "juggling"}, ["dog riding horse", "dog sitting on horse", "cup to the left of plate"])
    assert got == [("juggling", FALLBACK.format(name="juggling")), ("left of", MEANINGS["left of"]),
                   ("riding", MEANINGS["riding"]), ("sitting on", MEANINGS["sitting on"])]
