"""JSONL suites: the schema, line-numbered errors, path resolution, predicate aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from relbench.spec.data import Reference, SuiteItem, Triple
from relbench.errors import UserError
from relbench.spec.predicates import load_vocabulary
from relbench.suites.jsonl import SuiteRecord, load_jsonl_suite

VOCAB = load_vocabulary()
GOOD = {
    "id": "a", "image": "img/a.jpg", "image_size": [40, 30], "subject": "Dog", "predicate": "Riding On",
    "object": " big  horse ", "subject_box": [1, 2, 10, 12], "object_box": [0, 0, 40, 30], "meta": {"src": 1},
}


def write(tmp_path: Path, rows, name="suite.jsonl") -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "img" / "a.jpg")
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def error(tmp_path, rows) -> str:
    p = write(tmp_path, rows)
    with pytest.raises(UserError) as e:
        load_jsonl_suite(p, VOCAB)
    msg = str(e.value)
    assert "\n" not in msg
    return msg.replace(str(p), "FILE")


def test_loads_items_with_canonical_predicate_and_reference(tmp_path):
    p = write(tmp_path, [GOOD, "", {"id": 7, "subject": "cup", "predicate": "on top of", "object": "table"}])
    items = load_jsonl_suite(p, VOCAB)
    assert items[0] == SuiteItem(
        "a",
        (Triple("Dog", "riding", "big horse"),),  # alias resolved; names trimmed, case kept
        Reference(str(tmp_path / "img" / "a.jpg"), {"Dog": (1.0, 2.0, 10.0, 12.0), "big horse": (0.0, 0.0, 40.0, 30.0)}, (40, 30)),
    )
    # integer ids become strings; a line without image or boxes has no reference
    assert items[1] == SuiteItem("7", (Triple("cup", "on", "table"),), None)


def test_relative_images_resolve_against_the_jsonl_folder_or_images_root(tmp_path):
    sub = tmp_path / "splits"
    sub.mkdir()
    p = write(sub, [GOOD])
    assert load_jsonl_suite(p, VOCAB)[0].reference.image == str(sub / "img" / "a.jpg")
    other = tmp_path / "elsewhere"
    (other / "img").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(other / "img" / "a.jpg")
    assert load_jsonl_suite(p, VOCAB, images_root=other)[0].reference.image == str(other / "img" / "a.jpg")
    absolute = {**GOOD, "image": str(other / "img" / "a.jpg")}
    assert load_jsonl_suite(write(sub, [absolute]), VOCAB)[0].reference.image == str(other / "img" / "a.jpg")


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([GOOD, "{oops"], "FILE:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        ([GOOD, "[1, 2]"], "FILE:2: expected a JSON object, got list"),
        ([GOOD, {**GOOD, "id": "b", "colour": "red"}], "FILE:2: colour: unknown field (allowed: id, image, image_size, subject, predicate, object, subject_box, object_box, meta)"),
        ([{k: v for k, v in GOOD.items() if k != "subject"}], "FILE:1: subject: required field is missing (allowed: a non-empty name)"),
        ([{**GOOD, "object": "  "}], "FILE:1: object: Value error, must not be empty (allowed: a non-empty name)"),
        ([{**GOOD, "object_box": [0, "x", 1, 1]}], "FILE:1: object_box: expected a list of 4 numbers, got [0, \"x\", 1, 1]"),
        ([{**GOOD, "image_size": [40, 0]}], "FILE:1: image_size: Value error, must be positive, got [40, 0] (allowed: [width, height], positive integers)"),
        ([{**GOOD, "subject_box": [1, 2, 3]}], "FILE:1: subject_box: expected a list of 4 numbers, got [1, 2, 3] (allowed: [x_min, y_min, x_max, y_max] in pixels, x_min < x_max, y_min < y_max, inside image_size)"),
        ([GOOD, {**GOOD, "id": "b"}, {**GOOD, "id": "c", "object_box": [5, 5, 5, 9]}], "FILE:3: object_box: degenerate box [5.0, 5.0, 5.0, 9.0] (allowed: [x_min, y_min, x_max, y_max] in pixels, x_min < x_max, y_min < y_max, inside image_size)"),
        ([{**GOOD, "subject_box": [1, 2, 41, 12]}], "FILE:1: subject_box: box [1.0, 2.0, 41.0, 12.0] lies outside the 40x30 image (allowed: [x_min, y_min, x_max, y_max] in pixels, x_min < x_max, y_min < y_max, inside image_size)"),
        ([{**GOOD, "object_box": None}], "FILE:1: object_box: missing while the other box is given (allowed: both boxes or neither)"),
        ([{**GOOD, "image_size": None}], "FILE:1: image_size: required when boxes are given, so they can be checked (allowed: [width, height])"),
        ([{**GOOD, "object": "dog"}], "FILE:1: object: same name as the subject ('Dog'); boxes are keyed by name (allowed: two different objects)"),
        ([GOOD, {**GOOD}], "FILE:2: id: duplicate id 'a' (first on line 1; allowed: unique ids)"),
        ([{**GOOD, "image": "img/missing.jpg"}], "FILE:1: image: file not found: "),
    ],
)
def test_schema_errors_name_file_line_field_and_what_is_allowed(tmp_path, rows, expected):
    assert error(tmp_path, rows).startswith(expected)


def test_unknown_predicate_lists_the_known_ones(tmp_path):
    msg = error(tmp_path, [GOOD, {**GOOD, "id": "b", "predicate": "flying over"}])
    assert msg.startswith("FILE:2: predicate: unknown predicate 'flying over' (known: above, behind, below,")
    assert "riding" in msg and "wearing" in msg


def test_empty_or_missing_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(UserError, match="has no items"):
        load_jsonl_suite(tmp_path / "empty.jsonl", VOCAB)
    with pytest.raises(UserError, match="cannot open JSONL suite"):
        load_jsonl_suite(tmp_path / "nope.jsonl", VOCAB)


def test_written_records_read_back_identically():
    rec = SuiteRecord(**{**GOOD, "meta": {}})
    line = rec.to_json()
    assert "meta" not in json.loads(line)  # empty meta is omitted
    assert SuiteRecord.model_validate_json(line) == rec


def test_json_errors_name_the_column_on_the_line(tmp_path):
    """A line cut off after '"predicate": ' is reported at its end, not at column 1 of the next line."""
    full = json.dumps(GOOD)
    line = full[: full.index('"predicate": ') + len('"predicate": ')]
    msg = error(tmp_path, [GOOD, line])
    assert msg.startswith("FILE:2: not valid JSON (") and msg.endswith(f"at column {len(line) + 1})"), msg


def test_did_you_mean_names_only_listed_predicates(tmp_path):
    """Aliases are not in the printed list: a suggestion that matched one names its predicate."""
    msg = error(tmp_path, [{**GOOD, "predicate": "seated onn"}])
    known = msg[msg.index("(known: ") + 8 : msg.index(")")].split(", ")
    hint = msg[msg.index("did you mean ") + 13 :]
    assert "'sitting on' (alias 'seated on')" in hint, msg
    suggested = [part.split("'")[1] for part in hint.split(", ") if part.startswith("'")]
    assert suggested and all(name in known for name in suggested), (suggested, known)


def test_required_image_names_the_line(tmp_path):
    p = write(tmp_path, [GOOD, {k: v for k, v in GOOD.items() if k != "image"}])
    with pytest.raises(UserError) as e:
        load_jsonl_suite(p, VOCAB, require_image="training needs the photo of g+")
    assert str(e.value).startswith(f"{p}:2: image: required field is missing (training needs the photo of g+;")
