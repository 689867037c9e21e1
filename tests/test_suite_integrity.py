"""Hostile suite files and hostile text: every bad input is one line naming the record, no
reader crashes or merges two items, and samples.csv reads back exactly what was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from relbench.results.read import read_samples
from relbench.errors import UserError
from relbench.spec.predicates import load_vocabulary
from relbench.results.write import BASE_COLUMNS, write_samples_csv
from relbench.suites.jsonl import load_jsonl_suite
from relbench.suites.peers import load_peer_suite

VOCAB = load_vocabulary()
DEEP = "[" * 100_000  # deeper than Python's recursion limit: json.loads raises RecursionError
HOSTILE = ["a\rb", "c\nd", "e\r\nf", '"q",x', " lead", "\x00z", "\u2028x", "\x1b[31m", "007", "1e5", "é🐕"]


# ---------------------------------------------------------------- samples.csv


def hostile_rows() -> tuple[list[str], list[dict]]:
    columns = BASE_COLUMNS + ["pair_correct"]
    rows = []
    for i, text in enumerate(HOSTILE):
        row = {c: f"{c}-{text}" for c in BASE_COLUMNS}
        row.update(case_id=text, seed=str(i), noise_seed=str(i), pair_correct=float(i % 2))
        rows.append(row)
    return columns, rows


def test_samples_csv_reads_back_any_text(tmp_path):
    columns, rows = hostile_rows()
    write_samples_csv(tmp_path / "samples.csv", columns, rows)
    got_columns, got = read_samples(tmp_path / "samples.csv")
    assert got_columns == columns and len(got) == len(HOSTILE)  # "a\rb" unquoted used to split a row in two
    assert got == [{**r, "pair_correct": float(i % 2)} for i, r in enumerate(rows)]


def test_load_run_frames_keep_every_text_field(tmp_path):
    import relbench

    columns, rows = hostile_rows()
    write_samples_csv(tmp_path / "samples.csv", columns, rows)
    (tmp_path / "summary.json").write_text('{"runs": {}}')
    (tmp_path / "manifest.json").write_text("{}")
    frame = relbench.load_run(tmp_path).samples
    assert len(frame) == len(HOSTILE)
    assert frame["case_id"].tolist() == HOSTILE  # "007" and "1e5" stay ids, not numbers
    assert frame["prompt_pos"].tolist() == [f"prompt_pos-{t}" for t in HOSTILE]
    assert frame["seed"].tolist() == list(range(len(HOSTILE))) and frame["pair_correct"].tolist() == [0.0, 1.0] * 5 + [0.0]


def test_ordinary_rows_are_written_byte_for_byte_as_before(tmp_path):
    # quoting only where a field needs it: a row of plain text has no quotes, "\n" ends every line
    write_samples_csv(tmp_path / "s.csv", ["a", "b", "c"], [{"a": "x y", "b": 0.25, "c": None}, {"a": "p,q", "b": 1}])
    assert (tmp_path / "s.csv").read_bytes() == b'a,b,c\nx y,0.25,\n"p,q",1,\n'


def test_compare_csv_reads_back_a_run_name_with_a_carriage_return(tmp_path):
    import csv

    from relbench.results.compare import CSV_COLUMNS, write_outputs

    run = {"label": "a\rb", "is_reference": False,
           "metrics": {"k": {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 8}}}
    csv_path, _ = write_outputs({"runs": [run], "versus_baseline": [], "paired": []}, tmp_path / "cmp")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [CSV_COLUMNS, ["run", "a\rb", "", "k", "0.5", "0.25", "0.75", "8", "", "", ""]]


# ---------------------------------------------------------------- JSONL suites


ROW = {"id": "a", "subject": "dog", "predicate": "left of", "object": "cat"}


def jsonl_error(tmp_path: Path, data: bytes) -> str:
    p = tmp_path / "suite.jsonl"
    p.write_bytes(data)
    with pytest.raises(UserError) as e:
        load_jsonl_suite(p, VOCAB)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg
    return msg.replace(str(p), "FILE")


def lines(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


@pytest.mark.parametrize(
    "item_id, problem",
    [
        ("a\rb", "'a\\rb' holds the non-printable character '\\r'"),
        ("a\tb", "'a\\tb' holds the non-printable character '\\t'"),
        ("a\x00", "'a\\x00' holds the non-printable character '\\x00'"),
        ("x" * 201, "'" + "x" * 60 + "'... is 201 characters long"),
    ],
)
def test_jsonl_ids_must_be_printable_and_short(tmp_path, item_id, problem):
    msg = jsonl_error(tmp_path, lines({**ROW, "id": "ok"}, {**ROW, "id": item_id}))
    assert msg.startswith(f"FILE:2: id: Value error, {problem} (allowed: printable text without control characters, "
                          "1 to 200 characters, unique in the file")


def test_jsonl_id_of_200_printable_characters_is_valid(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(lines({**ROW, "id": "é" * 200}, {**ROW, "id": "a b"}))
    assert [i.id for i in load_jsonl_suite(p, VOCAB)] == ["é" * 200, "a b"]


def test_jsonl_non_utf8_byte_names_its_line(tmp_path):
    bad = json.dumps({**ROW, "id": "b", "object": "café"}, ensure_ascii=False).encode().replace("é".encode(), b"\xe9")
    msg = jsonl_error(tmp_path, lines(ROW, bad))
    assert msg.startswith("FILE:2: not UTF-8 text (byte 0xe9 at byte column ")
    assert msg.endswith("allowed: a UTF-8 encoded JSONL suite)")


def test_jsonl_deep_nesting_is_a_line_not_a_recursion_error(tmp_path):
    assert jsonl_error(tmp_path, lines(ROW, DEEP.encode())) == "FILE:2: not valid JSON (nested too deeply to read)"


def test_jsonl_reference_that_is_not_an_image_fails_at_load(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "notes.jpg").write_text("not a picture")
    msg = jsonl_error(tmp_path, lines({**ROW, "image": "good.png"}, {**ROW, "id": "b", "image": "notes.jpg"}))
    assert msg.startswith(f"FILE:2: image: {tmp_path / 'notes.jpg'} does not open as an image (")
    p = tmp_path / "ok.jsonl"
    p.write_bytes(lines({**ROW, "image": "good.png"}, {**ROW, "id": "b", "image": "good.png"}))
    assert [i.reference.image for i in load_jsonl_suite(p, VOCAB)] == [str(tmp_path / "good.png")] * 2


# ---------------------------------------------------------------- peers' files

GOOD_GENEVAL = {"tag": "position", "prompt": "a photo of a dog left of a bench",
                "include": [{"class": "bench", "count": 1}, {"class": "dog", "count": 1, "position": ["left of", 0]}]}
NOT_TWO = "position entry without exactly two classes and one position"
MALFORMED = "malformed 'position' (expected [relation, index of the other class])"


def peer(tmp_path, kind, data: bytes):
    p = tmp_path / f"{kind}.data"
    p.write_bytes(data)
    return load_peer_suite(kind, str(p), VOCAB)


@pytest.mark.parametrize(
    "line, reason",
    [
        ({"tag": "counting", "prompt": 5}, "tag 'counting' holds no relation (only 'position' does)"),  # was TypeError
        ({**GOOD_GENEVAL, "include": 5}, NOT_TWO),  # was TypeError
        ({**GOOD_GENEVAL, "include": [GOOD_GENEVAL["include"][1], "bench"]}, NOT_TWO),  # was AttributeError
        ({**GOOD_GENEVAL, "include": [{"class": "bench"}, {"class": "dog", "position": ["left of", -1]}]}, MALFORMED),
        ({**GOOD_GENEVAL, "include": [{"class": "bench"}, {"class": "dog", "position": ["left of", 0.0]}]}, MALFORMED),
        ({**GOOD_GENEVAL, "include": [{"class": None}, {"class": "dog", "position": ["left of", 0]}]},
         "a class that is not a string"),  # was the object "None"
        (DEEP, "not a JSON object"),  # was RecursionError
    ],
)
def test_malformed_geneval_lines_are_rejected_not_crashes(tmp_path, line, reason):
    text = line if isinstance(line, str) else json.dumps(line)
    items, rejected = peer(tmp_path, "geneval", (json.dumps(GOOD_GENEVAL) + "\n" + text + "\n").encode())
    assert [(i.id, i.graph[0].text()) for i in items] == [("geneval1", "dog left of bench")]
    assert [(r.line, r.reason) for r in rejected] == [(2, reason)]


def test_deep_geneval2_line_is_rejected(tmp_path):
    good = json.dumps({"prompt": "a dog to the left of a cat", "vqa_list": [["Is the dog to the left of the cat?", "Yes"]],
                       "skills": ["position"]})
    items, rejected = peer(tmp_path, "geneval2", f"{good}\n{DEEP}\n".encode())
    assert [i.id for i in items] == ["geneval21"]
    assert [(r.line, r.reason) for r in rejected] == [(2, "not a JSON object with a 'prompt' string")]


@pytest.mark.parametrize("kind", ["geneval", "geneval2", "t2i_compbench", "visor"])
def test_non_utf8_peer_file_is_one_line_naming_the_line(tmp_path, kind):
    with pytest.raises(UserError) as e:
        peer(tmp_path, kind, b"[\n\n  a dog left of a caf\xe9\n")
    assert str(e.value).startswith(f"{tmp_path / (kind + '.data')}:3: not UTF-8 text (byte 0xe9 at byte column 22: ")


def visor_entry(uid, a=("oven",), b=("dining table",)):
    return {"unique_id": uid, "num_objects": 2, "obj_1_attributes": a if not isinstance(a, tuple) else list(a),
            "obj_2_attributes": list(b), "rel_type": "to the left of", "text": "an oven to the left of a dining table"}


ATTRS = "obj_1_attributes / obj_2_attributes are not lists starting with the object's name"


@pytest.mark.parametrize("attrs", [5, {"x": 1}, [5], []])  # were TypeError, KeyError, the object "5", a wrong reason
def test_malformed_visor_attributes_are_rejected(tmp_path, attrs):
    data = [visor_entry(0), visor_entry(1, a=attrs)]
    items, rejected = peer(tmp_path, "visor", json.dumps(data).encode())
    assert [i.id for i in items] == ["visor0"] and [(r.line, r.reason) for r in rejected] == [(2, ATTRS)]


def test_deep_visor_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"visor\.data: not JSON that can be read \(nested too deeply\)"):
        peer(tmp_path, "visor", DEEP.encode())


@pytest.mark.parametrize("second", [3, "3"])
def test_visor_duplicate_unique_id_names_both_entries(tmp_path, second):
    # the two entries used to become one case id: row 1 carried row 3's prompt, image and score
    data = [visor_entry(3), visor_entry(4), visor_entry(second, a=["cat"])]
    with pytest.raises(UserError) as e:
        peer(tmp_path, "visor", json.dumps(data).encode())
    assert str(e.value) == (f"{tmp_path / 'visor.data'}: entry 3: id: duplicate id 'visor3' (first in entry 1; "
                            "allowed: unique ids)")


@pytest.mark.parametrize(
    "uid, problem",
    [("a\rb", "id: 'visora\\rb' holds the non-printable character '\\r'"),
     ([1], "unique_id: [1] is not an integer or a string")],
)
def test_visor_bad_unique_id_is_one_line(tmp_path, uid, problem):
    with pytest.raises(UserError) as e:
        peer(tmp_path, "visor", json.dumps([visor_entry(0), visor_entry(uid)]).encode())
    assert str(e.value).startswith(f"{tmp_path / 'visor.data'}: entry 2: {problem} (allowed: ")
