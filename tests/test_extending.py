"""The example plugin of docs/extending.md works as the page says: it passes the contract
tester, and a real `relbench run` of its config scores what its docstring promises."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin"


@pytest.fixture(scope="module")
def example():
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("brightness_gap")
    finally:
        sys.path.remove(str(EXAMPLE))


def test_example_passes_the_contract_tester(example):
    from relbench.plugin import check_metric, tiny_context, tiny_samples

    metric = example.BrightnessGap(example.BrightnessGap.Args(), tiny_context())
    rows = check_metric(metric)
    samples = tiny_samples()
    assert rows[-1] == {"brightness_gap": None}  # the reference-style sample without a g- image
    s = samples[0]
    assert rows[0]["brightness_gap"] == abs(float(s.image_pos.mean()) - float(s.image_neg.mean()))


def test_example_config_runs_and_scores_the_stored_images(cli, tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    res = cli("run", "--config", str(EXAMPLE / "benchmark.yaml"), "--out", str(out), "--no-report")
    assert res.returncode == 0, res.stderr

    def level(key):  # the red channel (the config's channel: 0) of a stored image
        with Image.open(out / "images" / key[:2] / f"{key}.png") as im:
            return float(np.asarray(im.convert("RGB"))[..., 0].mean())

    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert {r["run"] for r in rows} == {"oracle", "ignore_relation", "reference"} and len(rows) == 12
    for r in rows:
        assert float(r["brightness_gap"]) == abs(level(r["image_pos"]) - level(r["image_neg"]))
    summary = json.loads((out / "summary.json").read_text())
    for run in ("oracle", "ignore_relation", "reference"):
        gaps = [float(r["brightness_gap"]) for r in rows if r["run"] == run]
        got = summary["runs"][run]["metrics"]["brightness_gap_mean"]["value"]
        assert got == pytest.approx(np.mean(gaps), rel=1e-9) and got > 0  # summary.json keeps 10 digits
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["brightness_gap"]["consumes"] == ["images"]


def test_example_arguments_are_validated(cli, tmp_path):
    cfg = tmp_path / "benchmark.yaml"
    cfg.write_text((EXAMPLE / "benchmark.yaml").read_text().replace("channel: 0", "channel: 3"))
    (tmp_path / "brightness_gap.py").write_text((EXAMPLE / "brightness_gap.py").read_text())
    res = cli("run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-report")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "metrics.1.args.channel" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


def test_the_page_shows_the_file_the_suite_runs():
    page = (EXAMPLE.parent.parent / "docs" / "extending.md").read_text()
    assert f"```python\n{(EXAMPLE / 'brightness_gap.py').read_text()}```" in page
