"""The lazy, declared registry: built-ins imported on first use, broken optional plugins listed
as unavailable without breaking other commands, duplicates and missing packages in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relbench.errors import UserError
from relbench.plugin.registry import Entry, Registry

ROOT = Path(__file__).resolve().parents[1]
SHAPES = """\
suite: {{kind: shapes, triples_per_predicate: 1, predicates: [left of]}}
seeds: [0]
resolution: 32
metrics: [{metric}]
runs: [{{name: oracle, generator: shapes_oracle}}]
output_dir: {out}
"""


def _py(code: str, env=None):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)


def test_plugins_import_lazily_on_first_use():
    res = _py("import sys; from relbench.plugin.registry import GENERATORS, METRICS;"
              "GENERATORS.get('shapes_oracle'); METRICS.get('pair_mse');"
              "print(sorted(m for m in sys.modules if m.startswith(('relbench.generators.', 'relbench.metrics.'))))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['relbench.generators.shapes', 'relbench.metrics.pair_mse']"


def test_list_and_help_import_no_numpy():
    for argv in (["list"], ["--help"]):
        res = _py(f"import sys; from relbench.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass\n"
                  "print('numpy' in sys.modules, 'torch' in sys.modules)")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == "False False", (argv, res.stdout)


def test_missing_requirement_is_unavailable_with_its_extra():
    reg = Registry("metric", "relbench.plugin.metric:Metric", "relbench.test-none",
                   {"fancy": Entry("relbench.metrics.pair_mse:PairMSE", "built-in", "models",
                                   ("surely_not_installed_pkg",))})
    [(name, _, cls, why)] = reg.status()
    assert (name, cls) == ("fancy", None)
    assert why == "needs the package 'surely_not_installed_pkg' (pip install 'relbench[models]')"
    with pytest.raises(UserError) as exc:
        reg.get("fancy", where="b.yaml:3: metrics.0")
    assert str(exc.value) == ("b.yaml:3: metrics.0: metric 'fancy' is unavailable: needs the package "
                              "'surely_not_installed_pkg' (pip install 'relbench[models]')")


def _broken_distribution(site: Path, name: str, target: str) -> None:
    """An installed third-party plugin package whose module needs a library that is missing."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "broken_plugin.py").write_text("import fancylib_not_installed  # an optional dependency\n")
    info = site / "relbench_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: relbench-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[relbench.metrics]\n{name} = {target}\n")


def _env_with(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return env


def test_broken_optional_plugin_leaves_everything_else_working(cli, tmp_path):
    site = tmp_path / "site"
    _broken_distribution(site, "fancy", "broken_plugin:Fancy")
    env = {"PYTHONPATH": _env_with(site)["PYTHONPATH"]}
    res = cli("list", env=env)
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.strip().startswith("fancy "))
    assert "UNAVAILABLE: needs the package 'fancylib_not_installed'" in line and "relbench-broken" in line
    assert any(l.strip().startswith("pair_mse ") and "UNAVAILABLE" not in l for l in res.stdout.splitlines())

    cfg = tmp_path / "b.yaml"
    cfg.write_text(SHAPES.format(metric="pair_mse", out=tmp_path / "ok"))
    ok = cli("run", "--config", str(cfg), "--no-report", env=env)
    assert ok.returncode == 0, ok.stderr
    cfg.write_text(SHAPES.format(metric="fancy", out=tmp_path / "bad"))
    bad = cli("run", "--config", str(cfg), "--no-report", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "needs the package 'fancylib_not_installed'" in bad.stderr


def test_duplicate_entry_point_names_both_places(cli, tmp_path):
    site = tmp_path / "site"
    _broken_distribution(site, "pair_mse", "broken_plugin:PairMSE")
    res = cli("list", env={"PYTHONPATH": _env_with(site)["PYTHONPATH"]})
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "'pair_mse' is defined twice" in err
    assert "relbench.metrics.pair_mse:PairMSE (built-in)" in err and "broken_plugin:PairMSE" in err


def test_duplicate_plugin_module_names_both_places(cli, tmp_path):
    (tmp_path / "dup_plugins.py").write_text(
        "from relbench.generators.shapes import ShapesInverse\n"
        "from relbench.plugin.registry import register_generator\n\n\n"
        "@register_generator('shapes_oracle')\nclass Mine(ShapesInverse):\n    '''mine'''\n")
    cfg = tmp_path / "b.yaml"
    cfg.write_text(SHAPES.format(metric="pair_mse", out=tmp_path / "out") + "plugins: [dup_plugins]\n")
    res = cli("run", "--config", str(cfg), "--no-report")
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "'shapes_oracle' is defined twice" in err
    assert "relbench.generators.shapes:ShapesOracle (" in err and "generators/shapes.py:" in err
    assert f"dup_plugins:Mine ({tmp_path / 'dup_plugins.py'}:5)" in err


def test_builtin_with_missing_library_is_listed_unavailable_and_refused_in_one_line(tmp_path):
    """As on an install without the `models` extra: open_clip cannot be imported."""
    cfg = tmp_path / "b.yaml"
    cfg.write_text(SHAPES.format(metric="clip_alignment", out=tmp_path / "out"))
    code = ("import sys; sys.modules['open_clip'] = None\n"  # import open_clip now fails
            "from relbench.cli import main\n"
            "print('list', main(['list']))\n"
            f"print('run', main(['run', '--config', {str(cfg)!r}, '--no-report']))\n")
    res = _py(code)
    lines = res.stdout.splitlines()
    assert "list 0" in lines and "run 2" in lines, res.stdout + res.stderr
    assert any(l.split()[:2] == ["clip_alignment", "UNAVAILABLE:"] and l.endswith(
        "needs the package 'open_clip' (pip install 'relbench[models]')") for l in lines)
    assert any(l.split()[:1] == ["pair_mse"] and "UNAVAILABLE" not in l for l in lines)
    assert res.stderr.strip() == (f"relbench: error: {cfg}:4: metrics.0: metric 'clip_alignment' is unavailable: "
                                  "needs the package 'open_clip' (pip install 'relbench[models]')")
    assert not (tmp_path / "out").exists()
