"""Visual Genome splits: streaming reader, filtering rules, sampling, box geometry, export, CLI.

The hand-written fixture tests/fixtures/vg/ has 5 images in relationships.json; each
relationship is annotated below with the rule it is meant to hit. Balance tests use a small
generated VG-format dataset so quotas and disjointness can be counted by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from relbench.errors import UserError
from relbench.io.jsonstream import iter_json_array
from relbench.spec.predicates import load_vocabulary
from relbench.suites.jsonl import load_jsonl_suite
from relbench.vg.build import VGOptions, build_vg_splits
from relbench.cli.data import add_vg_arguments, vg_command
from relbench.vg.boxes import fit_square, transform_box
from relbench.vg.export import export_square
from relbench.vg.read import CandidateFilter, read_image_data
from relbench.vg.sample import quotas

FIXTURES = Path(__file__).parent / "fixtures" / "vg"
VOCAB = load_vocabulary()
SEED16 = [
    "above", "near", "behind", "below", "carrying", "eating", "hanging from", "holding", "in",
    "in front of", "looking at", "on", "riding", "sitting on", "standing on", "wearing",
]


# ---------------------------------------------------------------- streaming reader

AWKWARD = '\ufeff \n\t[ \n {"a": [1, {"b": "]}, \\"x\\""}], "é🐕": 2.5e-3} ,\n\n 12345 , "x,]" , [ ] , {}\n, -7 \n ]\n  '


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_stream_matches_json_load_at_any_chunk_size(tmp_path, chunk):
    # chunk=1 cuts every token, multi-byte characters and the number 12345 (which must not be
    # yielded as 1 or 12 just because the buffer happened to end there).
    p = tmp_path / "a.json"
    p.write_bytes(AWKWARD.encode("utf-8"))
    expected = json.loads(AWKWARD.lstrip("\ufeff"))
    assert list(iter_json_array(p, chunk_size=chunk)) == expected
    assert expected[1] == 12345 and expected[-1] == -7


@pytest.mark.parametrize(
    "text, where, what",
    [
        ('{"a": 1}', ":1:", "expected a JSON array"),
        ('[1,\n2\n3]', ":3:", "expected ',' or ']'"),
        ('[1, 2] x', ":1:", "unexpected text after"),
        ('[\n{"a": 1},\n{"a": ', ":3:", "not valid JSON"),
        ('[\n{"a": 1},\n  {"a": 1,, "b": 2}]\n', ":3:11: array element starting on line 3", "not valid JSON"),
        ('[\n{"a": 1},\n{"a": \n\n', ":3:6:", "not valid JSON (Expecting value)"),
        ('[1, 2', ":1:", "found end of file"),
    ],
)
def test_stream_errors_name_file_and_line(tmp_path, text, where, what):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        list(iter_json_array(p, chunk_size=2))
    assert str(e.value).startswith(f"{p}{where}") and what in str(e.value)


def test_stream_bounds_the_buffer_on_a_huge_or_corrupt_element(tmp_path):
    p = tmp_path / "big.json"
    p.write_text('[1, "' + "x" * 100 + '"]')
    with pytest.raises(UserError, match="larger than 50 characters"):
        list(iter_json_array(p, chunk_size=8, max_element=50))
    assert list(iter_json_array(p, chunk_size=8, max_element=200)) == [1, "x" * 100]


def test_stream_empty_array_and_missing_file(tmp_path):
    p = tmp_path / "e.json"
    p.write_text(" [ \n ] ")
    assert list(iter_json_array(p)) == []
    with pytest.raises(UserError, match="cannot open"):
        list(iter_json_array(tmp_path / "nope.json"))


# ---------------------------------------------------------------- filtering the fixture


def fixture_images(root: Path) -> Path:
    """Image files for fixture images 1-3 (image 4 deliberately has none)."""
    for rel, size in (("VG_100K/1.jpg", (400, 300)), ("VG_100K_2/2.jpg", (640, 480)), ("3.jpg", (100, 100))):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 120, 30)).save(root / rel)
    return root


def run_filter(tmp_path, predicates=SEED16, **kw):
    images, _ = read_image_data(FIXTURES / "image_data.json")
    filt = CandidateFilter(images, str(fixture_images(tmp_path / "imgs")), VOCAB, predicates, **kw)
    cands = [c for e in iter_json_array(FIXTURES / "relationships.json") for c in filt.image_candidates(e)]
    return filt, cands


def test_image_data_accepts_id_or_image_id_and_skips_sizeless():
    images, _ = read_image_data(FIXTURES / "image_data.json")
    assert sorted(images) == [1, 2, 3, 4]  # 3 uses "id"; 6 has no width
    assert (images[3].width, images[3].height, images[3].url) == (100, 100, None)


def test_every_relationship_is_kept_or_counted_once(tmp_path):
    filt, cands = run_filter(tmp_path)
    got = {(c.image_id, c.rel_key): (c.subject, c.predicate, c.object) for c in cands}
    assert got == {
        (1, "101"): ("man", "riding", "horse"),  # "Riding", "Man": case normalised, "names" list
        (1, "102"): ("woman", "riding", "horse"),  # alias "riding  on"; names[0] "Woman " trimmed
        (1, "104"): ("cup", "on", "table"),  # alias "on top of"
        (1, "111"): ("man", "holding", "rope"),  # 3 px wide: kept without --min-box
        (1, "114"): ("sign", "behind", "wall"),
        (2, "201"): ("cat", "sitting on", "chair"),
        (2, "202"): ("ball", "below", "table"),  # "UNDER" is an alias of below
        (3, "i0"): ("dog", "in", "car"),  # no relationship_id: keyed by its index
    }
    assert filt.read == 20  # 14 + 2 + 1 in images 1-3, 2 in image 4, 1 in image 5
    assert {k: v for k, v in filt.drops.items() if v} == {
        "malformed": 1,  # 113 has no subject
        "image_not_in_image_data": 1,  # image 5
        "image_file_missing": 2,  # image 4 has no file
        "predicate_not_in_vocabulary": 1,  # 103 "has"
        "predicate_not_selected": 1,  # 112 "to the left of" -> left of, not among the 16
        "missing_name": 1,  # 109 "names": []
        "degenerate_box": 1,  # 105 w = 0
        "box_outside_image": 1,  # 106 x + w = 450 > 400
        "subject_equals_object": 2,  # 107 same object_id; 108 "man" vs "MAN"
        "duplicate": 1,  # 110 repeats 101
    }
    assert sum(filt.drops.values()) + len(cands) == filt.read
    assert filt.unmapped == Counter({"has": 1})
    assert filt.raw_forms["riding"] == Counter({"riding": 1, "riding on": 1})
    boxes = {c.rel_key: (c.subject_box, c.object_box) for c in cands}
    assert boxes["101"] == ((10, 20, 110, 170), (50, 100, 350, 290))  # x, y, w, h -> x0, y0, x1, y1
    assert filt.paths[1].endswith(os.path.join("VG_100K", "1.jpg"))  # folder from the url
    assert filt.paths[3].endswith(os.path.join("imgs", "3.jpg"))  # no url: flat layout


def test_min_box_and_crop_visibility_rules(tmp_path):
    filt, cands = run_filter(tmp_path, min_box=5)
    assert filt.drops["box_too_small"] == 1 and "111" not in {c.rel_key for c in cands}
    # 256 crop of the 400x300 image keeps x in [42, 298] of the 341-wide resize: the sign at
    # x 0..40 maps to 0..34.1, entirely left of the window.
    filt, cands = run_filter(tmp_path, export=(256, "crop"))
    assert filt.drops["box_cropped_out"] == 1 and "114" not in {c.rel_key for c in cands}
    filt, cands = run_filter(tmp_path, export=(256, "pad"))  # padding cuts nothing
    assert filt.drops["box_cropped_out"] == 0 and len(cands) == 8


# ---------------------------------------------------------------- box geometry


def test_crop_fit_and_box_transform_by_hand():
    # 400x300 -> short side 256: scale 256/300, width round(341.33) = 341, window x 42..298.
    f = fit_square((400, 300), 256, "crop")
    assert (f.resized, f.offset) == ((341, 256), (42, 0))
    box, vis = transform_box((100, 30, 200, 150), (400, 300), f)
    # x: 100*341/400 - 42 = 43.25, 200*0.8525 - 42 = 128.5; y: 30*256/300 = 25.6, 150*256/300 = 128
    assert box == pytest.approx((43.25, 25.6, 128.5, 128.0)) and vis == pytest.approx(1.0)
    # x 0..100 -> -42..43.25, clipped to 0..43.25: visible 43.25 / 85.25 of its width
    box, vis = transform_box((0, 0, 100, 300), (400, 300), f)
    assert box == pytest.approx((0, 0, 43.25, 256)) and vis == pytest.approx(43.25 / 85.25)
    # portrait: the window moves along y
    assert fit_square((300, 400), 256, "crop").offset == (0, 42)


def test_pad_fit_and_box_transform_by_hand():
    # 400x300 -> long side 256: scale 0.64, 256x192 pasted at y = (256-192)/2 = 32
    f = fit_square((400, 300), 256, "pad")
    assert (f.resized, f.offset) == ((256, 192), (0, -32))
    box, vis = transform_box((100, 30, 200, 150), (400, 300), f)
    assert box == pytest.approx((64, 30 * 0.64 + 32, 128, 150 * 0.64 + 32)) and vis == 1.0


def test_export_crops_the_pixels_the_boxes_describe(tmp_path):
    # Left half red, right half blue at x = 200 of 400: after the crop the edge is at 128.5.
    src = tmp_path / "src.png"
    im = Image.new("RGB", (400, 300), (255, 0, 0))
    im.paste((0, 0, 255), (200, 0, 400, 300))
    im.save(src)
    assert export_square(str(src), str(tmp_path / "c.jpg"), (400, 300), 256, "crop") is False
    with Image.open(tmp_path / "c.jpg") as out:
        assert out.size == (256, 256)
        left, right = out.getpixel((120, 128)), out.getpixel((137, 128))
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60
    # pad: 256x192 content at y 32..224, black above and below
    export_square(str(src), str(tmp_path / "p.jpg"), (400, 300), 256, "pad")
    with Image.open(tmp_path / "p.jpg") as out:
        assert max(out.getpixel((60, 10))) < 30 and out.getpixel((60, 128))[0] > 200
    # a file whose size differs from image_data is first brought to the annotated size
    assert export_square(str(src), str(tmp_path / "m.jpg"), (800, 600), 256, "crop") is True


# ---------------------------------------------------------------- sampling


def write_vg(root: Path, rels: dict[int, list[str]], size=(64, 48)) -> dict[str, str]:
    """A VG-format dataset: image i has one relationship per listed predicate (flat layout)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    image_data, relationships = [], []
    for image_id, preds in rels.items():
        Image.new("RGB", size).save(root / "images" / f"{image_id}.jpg")
        image_data.append({"image_id": image_id, "width": size[0], "height": size[1]})
        relationships.append({"image_id": image_id, "relationships": [
            {"relationship_id": image_id * 100 + k, "predicate": p,
             "subject": {"object_id": 1, "x": 24 + k, "y": 10, "w": 8, "h": 8, "name": f"thing{k}"},
             "object": {"object_id": 2, "x": 20, "y": 20, "w": 20, "h": 20, "name": "table"}}
            for k, p in enumerate(preds)]})
    (root / "image_data.json").write_text(json.dumps(image_data))
    (root / "relationships.json").write_text(json.dumps(relationships))
    return {"relationships": str(root / "relationships.json"), "image_data": str(root / "image_data.json"),
            "images": str(root / "images")}


PREDS3 = ["riding", "on", "holding"]


def build(src, out, **kw):
    opts = VGOptions(**src, out=str(out), **{"train": 6, "val": 3, "predicates": PREDS3, **kw})
    return build_vg_splits(opts, VOCAB)


def read_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_quotas_spread_the_remainder_in_listed_order():
    assert quotas(800, SEED16) == {p: 50 for p in SEED16}
    assert quotas(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}


def test_balanced_disjoint_and_deterministic(tmp_path):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 31)})  # 30 usable per predicate
    summary = build(src, tmp_path / "a", seed=0)
    train, val = read_lines(tmp_path / "a/vg_train.jsonl"), read_lines(tmp_path / "a/vg_val.jsonl")
    # 6 train / 3 predicates = 2 each; 3 val / 3 = 1 each
    assert Counter(r["predicate"] for r in train) == {p: 2 for p in PREDS3}
    assert Counter(r["predicate"] for r in val) == {p: 1 for p in PREDS3}
    train_images = {r["meta"]["vg_image_id"] for r in train}
    val_images = {r["meta"]["vg_image_id"] for r in val}
    assert not train_images & val_images
    assert summary["per_predicate"]["on"] == {
        "usable": 30, "usable_images": 30, "train": 2, "val": 1, "raw_forms": {"on": 30}}
    assert summary["splits"]["val"] == {"file": "vg_val.jsonl", "items": 3, "images": len(val_images)}
    counts = json.loads((tmp_path / "a/vg_counts.json").read_text())
    assert counts["relationships_read"] == 90 and counts["usable"] == 90

    build(src, tmp_path / "b", seed=0)
    build(src, tmp_path / "c", seed=1)
    for name in ("vg_train.jsonl", "vg_val.jsonl", "vg_counts.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    def ids(d):
        return {r["id"] for s in ("train", "val") for r in read_lines(tmp_path / d / f"vg_{s}.jsonl")}
    assert ids("a") != ids("c")


def test_sample_does_not_depend_on_file_order_or_pool_size(tmp_path):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 31)})
    build(src, tmp_path / "a", seed=3)
    data = json.loads(Path(src["relationships"]).read_text())
    Path(src["relationships"]).write_text(json.dumps(data[::-1]))
    # A predicate's walk skips only images owned by the other split: at most the 6 images the
    # other two predicates took (one candidate per image), so 3 + 6 = 9 <= pool 10 suffices.
    build(src, tmp_path / "b", seed=3, pool=10)
    for name in ("vg_train.jsonl", "vg_val.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_too_few_examples_names_the_predicate_and_counts(tmp_path):
    rels = {i: ["riding", "on"] for i in range(1, 11)}
    rels[11], rels[12] = ["holding"], ["holding"]  # 2 usable, quota is 2 train + 1 val
    src = write_vg(tmp_path / "vg", rels)
    with pytest.raises(UserError) as e:
        build(src, tmp_path / "out")
    msg = str(e.value)
    assert "too few examples for 1 predicate(s): 'holding' has 2 usable, needs 3 (2 train + 1 val)" in msg
    assert "\n" not in msg and not (tmp_path / "out" / "vg_train.jsonl").exists()


def test_too_few_when_all_examples_share_one_image(tmp_path):
    rels = {i: ["riding", "on"] for i in range(1, 11)}
    rels[11] = ["holding", "holding", "holding"]  # 3 usable but one image cannot be in both splits
    src = write_vg(tmp_path / "vg", rels)
    with pytest.raises(UserError, match=r"'holding' filled only 0/2 train \+ 1/1 val of 3 usable"):
        build(src, tmp_path / "out")


def test_bad_options_are_user_errors(tmp_path):
    src = write_vg(tmp_path / "vg", {1: ["on"]})
    with pytest.raises(UserError, match="--predicates: unknown predicate 'flying'"):
        build(src, tmp_path / "o", predicates=["on", "flying"])
    with pytest.raises(UserError, match="'on top of' repeats 'on'"):
        build(src, tmp_path / "o", predicates=["on", "on top of"])
    with pytest.raises(UserError, match="--images .*: not a directory"):
        build({**src, "images": str(tmp_path / "missing")}, tmp_path / "o")


# ---------------------------------------------------------------- the command, end to end


def test_vg_command_writes_splits_that_load_as_a_suite(tmp_path, capsys):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 21)})
    parser = argparse.ArgumentParser()
    add_vg_arguments(parser)
    out = tmp_path / "splits"
    args = parser.parse_args([
        "--relationships", src["relationships"], "--image-data", src["image_data"], "--images", src["images"],
        "--out", str(out), "--train", "3", "--val", "3", "--seed", "5", "--prefix", "mini",
        "--predicates", "riding,on", "holding", "--export-images", "32",
    ])
    assert vg_command(args) == 0
    printed = capsys.readouterr().out
    assert f"{out}/mini_train.jsonl: 3 triples" in printed and "60 relationships read, 60 usable" in printed
    assert sorted(p.name for p in out.iterdir()) == ["mini_counts.json", "mini_images32", "mini_train.jsonl", "mini_val.jsonl"]
    line = read_lines(out / "mini_val.jsonl")[0]
    assert line["image"] == f"mini_images32/{line['meta']['vg_image_id']}.jpg"
    assert line["image_size"] == [32, 32] and line["meta"]["source_size"] == [64, 48]
    # 64x48 -> short side 32: 43x32 (round(42.67)), window x 5..37; sx = 43/64, sy = 2/3.
    # Object x 20..40 -> 13.4375-5, 26.875-5; y 20..40 -> 13.33, 26.67 (rounded to 2 places).
    assert line["object_box"] == [8.44, 13.33, 21.88, 26.67]
    assert line["meta"]["source_object_box"] == [20.0, 20.0, 40.0, 40.0]
    items = load_jsonl_suite(out / "mini_train.jsonl", VOCAB)
    assert len(items) == 3 and all(Image.open(i.reference.image).size == (32, 32) for i in items)


def test_splits_without_export_point_at_the_original_images(tmp_path):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 21)})
    build(src, tmp_path / "out", train=3, val=3)
    line = read_lines(tmp_path / "out/vg_train.jsonl")[0]
    assert line["image"] == f"../vg/images/{line['meta']['vg_image_id']}.jpg" and line["image_size"] == [64, 48]
    items = load_jsonl_suite(tmp_path / "out/vg_train.jsonl", VOCAB)
    assert os.path.isfile(items[0].reference.image)
    shutil.rmtree(tmp_path / "vg" / "images")
    with pytest.raises(UserError, match=r"vg_train.jsonl:1: image: file not found"):
        load_jsonl_suite(tmp_path / "out/vg_train.jsonl", VOCAB)


# ---------------------------------------------------------------- hostile files


def test_stream_deep_nesting_is_one_line(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[1,\n" + "[" * 200_000 + "]" * 200_000 + "]")  # raw_decode raised RecursionError
    with pytest.raises(UserError) as e:
        list(iter_json_array(p, chunk_size=1 << 16, max_element=1 << 20))
    assert str(e.value).startswith(f"{p}:2: array element starting on line 2 is nested too deeply to read")


def test_image_listed_twice_is_read_once_and_counted(tmp_path):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 31)})
    image_data = json.loads(Path(src["image_data"]).read_text())
    rels = json.loads(Path(src["relationships"]).read_text())
    # image 7 again in both files (a second size, a relationship of another id), image 8 as "8"
    image_data += [{**image_data[6], "width": 640}, {**image_data[7], "image_id": "8"}]
    again = {**rels[6], "relationships": [{**r, "relationship_id": 9999} for r in rels[6]["relationships"]]}
    Path(src["image_data"]).write_text(json.dumps(image_data))
    Path(src["relationships"]).write_text(json.dumps(rels + [again, {**rels[7], "image_id": "8"}]))
    summary = build(src, tmp_path / "out", train=30, val=30)  # 20 + 10 of the 30 images per predicate
    items = [r for s in ("train", "val") for r in read_lines(tmp_path / f"out/vg_{s}.jsonl")]
    ids = [r["id"] for r in items]
    assert len(ids) == len(set(ids)) == 60  # image 7's "vg7_700" used to appear twice in a split
    assert summary["entries_repeated"] == {"image_data": 2, "relationships": 2}
    assert summary["dropped"]["image_listed_again"] == 6 and summary["relationships_read"] == 96
    assert {r["image_size"][0] for r in items if r["meta"]["vg_image_id"] == 7} == {64}  # the first entry's size


@pytest.mark.parametrize("second_id", [700, "700", " 700"])
def test_relationship_id_repeated_in_an_image_is_dropped_once(tmp_path, second_id):
    src = write_vg(tmp_path / "vg", {i: ["on", "on"] for i in range(1, 11)})
    rels = json.loads(Path(src["relationships"]).read_text())
    rels[6]["relationships"][1]["relationship_id"] = second_id  # image 7: ids 700 and 700 again
    Path(src["relationships"]).write_text(json.dumps(rels))
    # equal ids in one image gave equal sampling priorities, and the pool's heap then compared
    # two Candidates: TypeError
    summary = build(src, tmp_path / "out", train=6, val=3, predicates=["on"])
    assert summary["dropped"]["relationship_id_repeated"] == 1 and summary["usable"] == 19
    ids = [r["id"] for s in ("train", "val") for r in read_lines(tmp_path / f"out/vg_{s}.jsonl")]
    assert len(ids) == len(set(ids)) == 9


def test_vg_command_says_how_many_entries_were_repeated(tmp_path, capsys):
    src = write_vg(tmp_path / "vg", {i: PREDS3 for i in range(1, 31)})
    image_data = json.loads(Path(src["image_data"]).read_text())
    Path(src["image_data"]).write_text(json.dumps(image_data + image_data[:3]))
    parser = argparse.ArgumentParser()
    add_vg_arguments(parser)
    args = parser.parse_args(["--relationships", src["relationships"], "--image-data", src["image_data"],
                              "--images", src["images"], "--out", str(tmp_path / "out"), "--train", "6", "--val", "3",
                              "--predicates", ",".join(PREDS3)])
    assert vg_command(args) == 0
    assert ("images listed again, read once from their first entry: 3 in image_data.json, 0 in relationships.json"
            in capsys.readouterr().out)
