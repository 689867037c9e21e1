"""A JSONL suite in benchmark.yaml: its reference photos are scored as the 'reference' run."""

import csv
import json

import pytest
from PIL import Image

from relbench.spec.data import Triple
from relbench.shapes.reference import render_reference

TRIPLES = [("red circle", "left of", "blue square"), ("green triangle", "above", "yellow circle"),
           ("pink square", "in", "cyan circle"), ("orange circle", "on", "purple square")]


def make_suite(tmp_path, swap_first_photo=False):
    lines = []
    (tmp_path / "photos").mkdir()
    for i, (s, p, o) in enumerate(TRIPLES):
        img, boxes = render_reference((Triple(s, p, o),), 7, (128, 96))
        if swap_first_photo and i == 0:  # a wrong "photo": the relation drawn the other way
            img, boxes = render_reference((Triple(o, p, s),), 7, (128, 96))
        Image.fromarray(img).save(tmp_path / "photos" / f"{i}.png")
        lines.append(json.dumps({"id": f"t{i}", "image": f"photos/{i}.png", "image_size": [128, 96],
                                 "subject": s, "predicate": p, "object": o,
                                 "subject_box": list(boxes[s]), "object_box": list(boxes[o])}))
    (tmp_path / "suite.jsonl").write_text("\n".join(lines) + "\n")


CONFIG = """\
name: jsonl
suite: {{kind: jsonl, path: {suite}}}
seeds: [0]
resolution: [128, 96]
metrics: [pair_mse, {{name: spatial, args: {{detector: shapes}}}}]
runs:
  - {{name: oracle, generator: shapes_oracle}}
output_dir: {out}
"""


def test_jsonl_suite_with_reference_photos(cli, tmp_path):
    make_suite(tmp_path, swap_first_photo=True)
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=tmp_path / "suite.jsonl", out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    ref = summary["runs"]["reference"]["metrics"]
    # 3 of 4 photos show the relation; the swapped one does not
    assert ref["spatial_pos_acc"]["value"] == 0.75 and ref["spatial_pos_acc"]["n"] == 4
    assert ref["mse_mean"]["n"] == 0 and ref["mse_mean"]["value"] is None  # a photo has no g- twin
    assert summary["runs"]["oracle"]["metrics"]["spatial_pos_acc"]["value"] == 1.0
    rows = [r for r in csv.DictReader(open(tmp_path / "out" / "samples.csv")) if r["run"] == "reference"]
    assert all(r["image_pos"].startswith("file:") and r["image_neg"] == "" for r in rows)


def test_jsonl_schema_error_names_file_and_line(cli, tmp_path):
    make_suite(tmp_path)
    text = (tmp_path / "suite.jsonl").read_text().splitlines()
    text[2] = text[2].replace('"in"', '"flying over"')
    (tmp_path / "suite.jsonl").write_text("\n".join(text) + "\n")
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=tmp_path / "suite.jsonl", out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "suite.jsonl:3" in res.stderr and "flying over" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_replaced_photos_are_rescored(cli, tmp_path):
    """Score caches key on a photo's bytes, not its path: photos replaced in place (a VG export
    redone with another --fit) are scored again, as a fresh directory scores them."""
    make_suite(tmp_path)
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=tmp_path / "suite.jsonl", out=tmp_path / "out"))
    assert cli("run", "--config", str(tmp_path / "b.yaml")).returncode == 0

    def reference_acc(out):
        return json.loads((out / "summary.json").read_text())["runs"]["reference"]["metrics"]["spatial_pos_acc"]["value"]

    assert reference_acc(tmp_path / "out") == 1.0
    s, p, o = TRIPLES[0]  # photo 0 now shows the relation the other way round: 3 of 4 right
    Image.fromarray(render_reference((Triple(o, p, s),), 7, (128, 96))[0]).save(tmp_path / "photos" / "0.png")
    assert cli("run", "--config", str(tmp_path / "b.yaml")).returncode == 0
    (tmp_path / "fresh.yaml").write_text(CONFIG.format(suite=tmp_path / "suite.jsonl", out=tmp_path / "fresh"))
    assert cli("run", "--config", str(tmp_path / "fresh.yaml")).returncode == 0
    assert reference_acc(tmp_path / "out") == reference_acc(tmp_path / "fresh") == 0.75


def test_reference_that_is_not_an_image_fails_at_plan_time(cli, tmp_path):
    make_suite(tmp_path)
    (tmp_path / "photos" / "2.png").write_text("a text file saved under an image's name")
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=tmp_path / "suite.jsonl", out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    # used to fail only when the reference run was scored, after every image was generated
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"suite.jsonl:3: image: {tmp_path / 'photos' / '2.png'} does not open as an image" in res.stderr
    assert not (tmp_path / "out").exists()
