"""`relbench export` and the `images` generator: a folder of images made elsewhere scores exactly
as the generator that drew them, and a folder that cannot be scored is refused before scoring."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from relbench.cli import main

CONFIG = """name: small
suite: {{kind: shapes, triples_per_predicate: 1}}
seeds: [0, 1]
resolution: 64
metrics: [pair_mse, {{name: spatial, args: {{detector: shapes, rule_set: relbench}}}}]
runs:
  - {{name: {name}, generator: {generator}, prompt_mode: {mode}{args}}}
output_dir: {out}
"""

#: the outside script: it reads only requests.jsonl and draws each line with the shapes world as
#: shapes_ignore_relation would (random placement: outcomes vary, so a wrong file changes numbers)
FILL = """import json, sys
from pathlib import Path
from PIL import Image
from relbench.spec.data import graph_from_json
from relbench.shapes.world import layout, render, scene_rng
folder = Path(sys.argv[1])
for raw in (folder / "requests.jsonl").read_text().splitlines()[1:]:
    r = json.loads(raw)
    graph, size = graph_from_json(r["graph"]), (r["width"], r["height"])
    objs = layout(graph, scene_rng(r["seed"], graph, "generator:random"), size, "random")
    Image.fromarray(render(objs, size)).save(folder / r["file"])
"""


def config(tmp_path, name, out, generator="shapes_ignore_relation", mode="relation", **args):
    text = CONFIG.format(name=name, generator=generator, mode=mode, out=tmp_path / out,
                         args=f", args: {json.dumps(args)}" if args else "")
    path = tmp_path / f"{out}.yaml"
    path.write_text(text)
    return str(path)


def export(tmp_path, folder="ex", uses="prompt,graph", mode="relation"):
    assert main(["export", "--config", config(tmp_path, "draw", "unused", mode=mode), "--out", str(tmp_path / folder),
                 "--uses", uses]) == 0
    return tmp_path / folder


def fill(folder: Path):
    script = folder.parent / "fill.py"
    script.write_text(FILL)
    subprocess.run([sys.executable, str(script), str(folder)], check=True)


def lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "requests.jsonl").read_text().splitlines()[1:]]


def run(tmp_path, out, **kw) -> int:
    return main(["run", "--config", config(tmp_path, "model", out, **kw), "--no-progress", "--no-report"])


def scores(tmp_path, out) -> dict:
    """case id -> the metric columns of samples.csv, as written."""
    with open(tmp_path / out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first = list(rows[0]).index("image_neg") + 1
    return {r["case_id"]: {k: v for k, v in list(r.items())[first:]} for r in rows if r["run"] == "model"}


def metrics(tmp_path, out) -> dict:
    return json.loads((tmp_path / out / "summary.json").read_text())["runs"]["model"]["metrics"]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """The shapes generator's own run, the reference every folder must reproduce exactly."""
    tmp = tmp_path_factory.mktemp("drawn")
    assert run(tmp, "shapes") == 0
    return scores(tmp, "shapes"), metrics(tmp, "shapes")


def test_an_export_filled_by_an_outside_script_scores_exactly_as_the_generator(tmp_path, drawn, capsys):
    folder = export(tmp_path)
    fill(folder)
    capsys.readouterr()
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 0
    out = capsys.readouterr().out
    assert "36 images loaded from files, 0 reused" in out and "generated" not in out.splitlines()[0]
    assert scores(tmp_path, "images") == drawn[0]  # every case's every column, to the last digit
    assert metrics(tmp_path, "images") == drawn[1]
    assert 0 < drawn[1]["spatial_pos_acc"]["value"] < 1  # random placement: a wrong file would show


def test_export_lines_carry_the_runs_requests_deduplicated_by_uses(tmp_path):
    both = lines(export(tmp_path, "both", uses="prompt,graph", mode="neutral"))
    text = lines(export(tmp_path, "text", uses="prompt", mode="neutral"))
    # 9 items x 2 seeds; neutral prompts say the same of g+ and g-: one image per case for a
    # text-only generator, two for a graph-conditioned one
    assert (len(text), len(both)) == (18, 36)
    assert text[0]["cases"] == [["shapes-above-000-s0", "pos"], ["shapes-above-000-s0", "neg"]]
    assert text[0]["file"] == "00000-pos-s0.png" and text[3]["file"] == "00003-pos-s1.png"
    assert set(text[0]) == {"file", "prompt", "graph", "seed", "width", "height", "run", "prompt_mode", "cases"}
    from relbench.spec.data import noise_seed

    assert text[0]["seed"] == noise_seed(0, "shapes-above-000") and (text[0]["width"], text[0]["height"]) == (64, 64)
    assert (text[0]["run"], text[0]["prompt_mode"]) == ("draw", "neutral")
    prompts = (tmp_path / "text" / "prompts.txt").read_text().splitlines()
    assert prompts == list(dict.fromkeys(x["prompt"] for x in text)) and len(prompts) == 9
    head = json.loads((tmp_path / "text" / "requests.jsonl").read_text().splitlines()[0])
    assert head["uses"] == ["prompt"] and "save it as a PNG named `file`" in head["readme"]


def test_names_are_stable_and_an_export_never_overwrites_foreign_files(tmp_path, capsys):
    a, b = export(tmp_path, "a"), export(tmp_path, "b")
    assert (a / "requests.jsonl").read_bytes() == (b / "requests.jsonl").read_bytes()
    (a / "00000-pos-s0.png").write_bytes(b"drawn")
    export(tmp_path, "a")  # an earlier export: written again, the drawn image kept
    assert (a / "00000-pos-s0.png").read_bytes() == b"drawn"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert main(["export", "--config", config(tmp_path, "x", "o"), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds files relbench export did not write (notes.txt)" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert main(["export", "--config", config(tmp_path, "x", "o"), "--out", str(tmp_path / "c"), "--uses", "box"]) == 2
    assert "--uses 'box': unknown field box" in capsys.readouterr().err


def test_missing_wrong_sized_and_broken_files_are_refused_before_scoring(tmp_path, capsys):
    folder = export(tmp_path)
    fill(folder)
    names = [x["file"] for x in lines(folder)]
    for n in names[1:6]:
        (folder / n).unlink()
    Image.new("RGB", (32, 32)).save(folder / names[7])
    (folder / names[9]).write_bytes(b"not a png")
    capsys.readouterr()
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("relbench: error: ") and "Traceback" not in err
    assert "runs.0.args.dir: 7 of 36 images missing or unusable" in err
    shown = err.split("first: ")[1]
    assert [s.split(" (")[0] for s in shown.split("; draw")[0].split("; ")] == names[1:6]  # the first five, in order
    assert not (tmp_path / "images").exists()  # nothing written: refused at plan time
    # the size and the content are checked too, and resize: true accepts the other size
    for n in names[1:6]:
        Image.open(folder / names[0]).save(folder / n)
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 2
    err = capsys.readouterr().err
    assert "2 of 36 images" in err and f"{names[7]} (32x32, the run asks for 64x64; or set resize: true)" in err
    assert f"{names[9]} (not an image)" in err


def test_resize_scales_a_file_of_another_size(tmp_path, capsys):
    folder = export(tmp_path)
    fill(folder)
    name = lines(folder)[0]["file"]
    Image.new("RGB", (32, 16), (200, 10, 10)).save(folder / name)
    assert run(tmp_path, "images", generator="images", dir=str(folder), resize=True) == 0
    with open(tmp_path / "images" / "samples.csv", newline="") as f:
        key = next(csv.DictReader(f))["image_pos"]
    stored = np.asarray(Image.open(tmp_path / "images" / "images" / key[:2] / f"{key}.png"))
    assert stored.shape == (64, 64, 3) and (stored == [200, 10, 10]).all()  # the file scaled to 64 x 64


def test_allow_missing_leaves_the_cases_out_and_says_how_many(tmp_path, drawn, capsys):
    folder = export(tmp_path)
    fill(folder)
    first = lines(folder)[0]
    (folder / first["file"]).unlink()
    capsys.readouterr()
    assert main(["run", "--config", config(tmp_path, "model", "images", generator="images", dir=str(folder),
                                           allow_missing=True), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "17 cases" in out and "note: 1 case(s) left out of every run: model has no usable image" in out
    summary = json.loads((tmp_path / "images" / "summary.json").read_text())
    assert summary["cases_left_out"] == {"model": 1} and summary["n_cases"] == 17
    manifest = json.loads((tmp_path / "images" / "manifest.json").read_text())
    assert manifest["cases_left_out"] == {"model": [first["cases"][0][0]]}
    assert "1 case left out of every run: <b>model</b>" in (tmp_path / "images" / "report.html").read_text()
    kept = scores(tmp_path, "images")
    assert kept == {k: v for k, v in drawn[0].items() if k != first["cases"][0][0]}


def test_replacing_a_file_changes_the_fingerprint_and_rescores(tmp_path, capsys):
    folder = export(tmp_path)
    fill(folder)
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 0
    before = scores(tmp_path, "images")
    fp = lambda: json.loads((tmp_path / "images" / "summary.json").read_text())["runs"]["model"]["fingerprint"]  # noqa: E731
    fp1 = fp()
    capsys.readouterr()
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 0  # nothing changed: all reused
    assert "0 images generated, 36 reused" in capsys.readouterr().out and fp() == fp1
    first = lines(folder)[0]
    Image.new("RGB", (64, 64), (128, 128, 128)).save(folder / first["file"])  # a blank g+
    capsys.readouterr()
    assert main(["run", "--config", config(tmp_path, "model", "images", generator="images", dir=str(folder)),
                 "--dry-run"]) == 0
    assert "model (images): fingerprint changed: image files changed" in capsys.readouterr().out
    assert run(tmp_path, "images", generator="images", dir=str(folder)) == 0
    after, case = scores(tmp_path, "images"), first["cases"][0][0]
    assert fp() != fp1
    assert after[case]["pos_detected"] == "0.0" != before[case]["pos_detected"]
    assert after[case]["pair_mse"] != before[case]["pair_mse"]
    assert {k: v for k, v in after.items() if k != case} == {k: v for k, v in before.items() if k != case}


def _by_prompt(folder: Path) -> dict:
    """prompt -> [the export's file of seed 0, of seed 1] (each prompt is one item's g+ or g-)."""
    out: dict = {}
    for x in lines(folder):
        out.setdefault(x["prompt"], {})[int(x["file"].split("-s")[1][0])] = folder / x["file"]
    return {p: [v[0], v[1]] for p, v in out.items()}


def test_a_geneval_folder_scores_as_it_is(tmp_path, drawn, capsys):
    folder = export(tmp_path)
    fill(folder)
    gen = tmp_path / "geneval"
    for i, (prompt, files) in enumerate(_by_prompt(folder).items()):  # as GenEval's generation script writes
        (gen / f"{i:05}" / "samples").mkdir(parents=True)
        (gen / f"{i:05}" / "metadata.jsonl").write_text(json.dumps({"tag": "position", "prompt": prompt}))
        for k, f in enumerate(files):
            (gen / f"{i:05}" / "samples" / f"{k:05}.png").write_bytes(f.read_bytes())
    assert run(tmp_path, "images", generator="images", dir=str(gen), layout="geneval") == 0
    assert scores(tmp_path, "images") == drawn[0]
    (gen / "00003" / "samples" / "00001.png").unlink()
    assert run(tmp_path, "images", generator="images", dir=str(gen), layout="geneval") == 2
    assert "1 of 36 images missing or unusable" in capsys.readouterr().err


def test_a_t2i_compbench_folder_scores_as_it_is(tmp_path, drawn, capsys):
    folder = export(tmp_path)
    fill(folder)
    samples = tmp_path / "compbench" / "samples"
    samples.mkdir(parents=True)
    count = 0  # T2I-CompBench numbers its files over the whole folder, not per prompt
    for prompt, files in _by_prompt(folder).items():
        for f in files:
            (samples / f"{prompt}_{count:06}.png").write_bytes(f.read_bytes())
            count += 1
    assert run(tmp_path, "images", generator="images", dir=str(samples.parent), layout="t2i_compbench") == 0
    assert scores(tmp_path, "images") == drawn[0]
    prompt = next(iter(_by_prompt(folder)))
    (samples / f"{prompt}_000001.png").unlink()
    assert run(tmp_path, "images", generator="images", dir=str(samples.parent), layout="t2i_compbench") == 2
    assert f"samples/{prompt}_*.png: 1 file(s), sample 2 wanted" in capsys.readouterr().err


def test_export_builds_no_generator_and_names_each_prompt_mode(tmp_path):
    """The config that will score the folder exports it: its `images` run (whose folder is still
    empty) is not built; runs of two prompt modes get one file each, named by the mode."""
    cfg = tmp_path / "both.yaml"
    text = CONFIG.format(name="model", generator="images", mode="relation", out=tmp_path / "run",
                         args=f", args: {{dir: {tmp_path / 'ex'}}}")
    neutral = f"  - {{name: model-neutral, generator: images, prompt_mode: neutral, args: {{dir: {tmp_path / 'ex'}}}}}\n"
    cfg.write_text(text.replace("output_dir:", neutral + "output_dir:"))
    assert main(["export", "--config", str(cfg), "--out", str(tmp_path / "ex")]) == 0
    got = lines(tmp_path / "ex")
    # relation: g+ and g- differ (36); neutral, deduplicated by prompt: one per case (18)
    assert len(got) == 54 and got[0]["file"] == "00000-pos-s0-relation.png"
    assert [x["file"] for x in got if x["prompt_mode"] == "neutral"][:2] == ["00000-pos-s0-neutral.png",
                                                                           "00001-pos-s1-neutral.png"]
    assert {x["run"] for x in got} == {"model", "model-neutral"}
