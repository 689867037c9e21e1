"""One installed namespace: `relbench` is the only top-level module an install provides, for
the editable install of this checkout and for a regular (non-editable) one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """\
import importlib, importlib.resources, sys
import relbench.generators.shapes, relbench.metrics.pair_mse, relbench.trainers, relbench.reports, relbench.testing
from relbench.plugin.registry import GENERATORS, METRICS
assert GENERATORS.get('shapes_oracle').__module__ == 'relbench.generators.shapes'
assert METRICS.get('spatial').__module__ == 'relbench.metrics.spatial'
templates = [t.name for t in importlib.resources.files('relbench.reports').joinpath('templates').iterdir()]
assert any(t.endswith('.j2') for t in templates), templates
assert importlib.resources.files('relbench').joinpath('default_benchmark.yaml').is_file()
for top in ('generators', 'metrics', 'trainers', 'reports'):
    try:
        importlib.import_module(top)
    except ModuleNotFoundError:
        pass
    else:
        sys.exit(f'import {top} worked: a second top-level module is installed')
print(relbench.__file__, relbench.metrics.__file__)
"""


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def test_editable_install_has_one_namespace(tmp_path):
    res = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, env=_clean_env())
    assert res.returncode == 0, res.stderr + res.stdout
    init, metrics = res.stdout.split()
    assert Path(init).parent == ROOT / "relbench" and Path(metrics).parent == ROOT / "metrics"


def test_regular_install_has_one_namespace(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "relbench", "generators", "metrics", "trainers", "reports"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                           env=_clean_env(PIP_NO_INPUT="1"))
    assert build.returncode == 0, build.stderr
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "relbench"]
    run = tmp_path / "elsewhere"
    run.mkdir()
    res = subprocess.run([sys.executable, "-c", CHECK], cwd=run, capture_output=True, text=True,
                         env=_clean_env(PYTHONPATH=str(target)))
    assert res.returncode == 0, res.stderr + res.stdout
    init, metrics = res.stdout.split()
    assert Path(init).parent == target / "relbench" and Path(metrics).parent == target / "relbench" / "metrics"
