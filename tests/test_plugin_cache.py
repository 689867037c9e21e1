"""Caches keyed by plugin code, and `plugins:` resolved from the config's directory.

A plugin file beside its config is loaded through `plugins:` by the `relbench` script run from
another directory; editing its generator redraws the images, editing its metric rescores, and
an unchanged rerun reuses everything."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

PLUGIN = '''\
import numpy as np

from relbench.plugin.generator import Generator
from relbench.plugin.metric import Aggregate, Metric
from relbench.plugin.registry import register_generator, register_metric

LEVEL = {level}
SCALE = {scale}


@register_generator("flat_level")
class FlatLevel(Generator):
    """Test only: a flat grey image."""

    uses = frozenset({{"graph"}})

    def generate(self, requests):
        return [np.full((r.size[1], r.size[0], 3), LEVEL, np.uint8) for r in requests]


@register_metric("level")
class Level(Metric):
    """Test only: scaled mean pixel of img_pos."""

    def columns(self):
        return ["level"]

    def score(self, samples):
        return [{{"level": SCALE * float(np.mean(s.image_pos))}} for s in samples]

    def aggregates(self):
        return [Aggregate("level_mean", "level", "mean")]
'''

CONFIG = """\
suite: {kind: shapes, triples_per_predicate: 1, predicates: [left of]}
seeds: [0]
resolution: 16
reference_run: false
plugins: [my_plugins]
metrics: [level]
runs: [{name: flat, generator: flat_level}]
output_dir: out
"""


def _script_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the plugin must resolve from the config's directory alone
    return env


def _run(cfg: Path, cwd: Path, module: bool = False):
    cmd = [sys.executable, "-m", "relbench"] if module else [str(Path(sys.executable).parent / "relbench")]
    res = subprocess.run(cmd + ["run", "--config", str(cfg), "--no-report", "--no-progress"], cwd=cwd,
                         capture_output=True, text=True, env=_script_env())
    assert res.returncode == 0, res.stderr
    generated, reused = map(int, re.search(r"(\d+) images generated, (\d+) reused", res.stdout).groups())
    value = json.loads((cfg.parent / "out" / "summary.json").read_text())["runs"]["flat"]["metrics"]["level_mean"]
    return generated, reused, value["value"]


def test_editing_a_plugin_regenerates_and_rescores(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (bench / "my_plugins.py").write_text(PLUGIN.format(level=10, scale=1))
    cfg = bench / "benchmark.yaml"
    cfg.write_text(CONFIG.replace("output_dir: out", f"output_dir: {bench / 'out'}"))

    n, reused, value = _run(cfg, elsewhere)
    assert n > 0 and reused == 0 and value == 10.0
    assert _run(cfg, elsewhere) == (0, n, 10.0)  # unchanged: everything reused
    assert _run(cfg, elsewhere, module=True) == (0, n, 10.0)  # same resolution under python -m relbench

    (bench / "my_plugins.py").write_text(PLUGIN.format(level=20, scale=1))  # the generator's pixels
    assert _run(cfg, elsewhere) == (n, 0, 20.0)

    (bench / "my_plugins.py").write_text(PLUGIN.format(level=20, scale=2))  # only the metric's arithmetic
    # (the generator lives in the same module, so its images are redrawn too: the key covers the file)
    assert _run(cfg, elsewhere)[2] == 40.0


def test_editing_an_imported_helper_rescores_but_keeps_images(tmp_path):
    """The fingerprint follows the plugin's imports within its own package: a metric in its own
    module re-scores when the helper it imports changes, and the generator's images stay."""
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    gen_src, metric_src = PLUGIN.format(level=10, scale=1).split('@register_metric("level")')
    (pkg / "gen.py").write_text(gen_src)
    (pkg / "metric.py").write_text(
        "import numpy as np\n\nfrom relbench.plugin.metric import Aggregate, Metric\n"
        "from relbench.plugin.registry import register_metric\n\nfrom . import helper\n\n\n"
        '@register_metric("level")' + metric_src.replace("SCALE *", "helper.SCALE *"))
    (pkg / "helper.py").write_text("SCALE = 1\n")
    cfg = tmp_path / "benchmark.yaml"
    cfg.write_text(CONFIG.replace("[my_plugins]", "[mypkg.gen, mypkg.metric]").replace("output_dir: out", f"output_dir: {tmp_path / 'out'}"))
    n, _, value = _run(cfg, tmp_path)
    assert value == 10.0
    (pkg / "helper.py").write_text("SCALE = 3\n")
    assert _run(cfg, tmp_path) == (0, n, 30.0)


def test_list_config_shows_its_plugins(cli, tmp_path):
    (tmp_path / "my_plugins.py").write_text(PLUGIN.format(level=1, scale=1))
    cfg = tmp_path / "benchmark.yaml"
    cfg.write_text(CONFIG)
    res = subprocess.run([str(Path(sys.executable).parent / "relbench"), "list", "--config", str(cfg)],
                         cwd=Path(sys.executable).parent, capture_output=True, text=True, env=_script_env())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(l.split()[:1] == ["flat_level"] and "[plugins: my_plugins]" in l for l in lines)
    assert any(l.split()[:1] == ["level"] and "scaled mean pixel" in l for l in lines)
    assert any(l.split()[:1] == ["shapes_oracle"] for l in lines)
