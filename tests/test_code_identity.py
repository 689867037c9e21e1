"""Plugin code identity: the import scan finds what Python's parser finds, the digest follows
relbench and same-package imports, and libraries are recorded by version, not hashed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import relbench.io.code_identity as ci

ROOT = Path(__file__).resolve().parents[1]


def _ast_imports(src: str) -> set:
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {(a.name, ()) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(("." * node.level + (node.module or ""), tuple(a.name for a in node.names)))
    return out


def _regex_imports(src: str) -> set:
    out = set()
    for m in ci._IMPORT.finditer(src):
        if m["plain"]:
            out |= {(n.split()[0], ()) for n in m["plain"].split(",") if n.strip()}
        else:
            names = re.sub(r"#[^\n]*", "", m["paren"] or m["names"] or "").replace("\\", " ").split(",")
            out.add((m["dots"] + (m["base"] or ""), tuple(n.split()[0] for n in names if n.strip())))
    return out


def test_import_scan_misses_nothing_the_parser_sees():
    files = [f for d in ("relbench", "generators", "metrics", "trainers", "reports", "tests") for f in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    for f in files:
        src = f.read_text()
        assert _ast_imports(src) <= _regex_imports(src), f


def test_identity_follows_own_package_and_records_libraries(tmp_path, monkeypatch):
    pkg = tmp_path / "idpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("import numpy\n\ndef f():\n    from .helper import X\n    from relbench.spec.data import Triple\n")
    (pkg / "helper.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    digest, libs = ci.module_identity("idpkg.plugin")
    assert dict(libs) == {"numpy": __import__("numpy").__version__}
    # the closure: the plugin, its package helper, and relbench.spec.data with what it imports
    for cached in (ci.module_identity, ci.module_digests, ci.import_closure, ci._imports):
        cached.cache_clear()
    (pkg / "helper.py").write_text("X = 2\n")
    assert ci.module_identity("idpkg.plugin")[0] != digest
    data_source, _ = ci._imports("relbench.spec.data")
    assert data_source == (ROOT / "relbench" / "spec" / "data.py").read_bytes()


def _digest(source: str) -> str:
    import io

    return ci._code_digest(io.BytesIO(source.encode()))


def test_code_is_hashed_without_docstrings_comments_or_formatting():
    """relbench/spec/data.py: a docstring or comment edited in noise_seed keeps the digest (no image
    redrawn); a changed formula changes it (every image redrawn)."""
    src = (ROOT / "relbench" / "spec" / "data.py").read_text()
    start = src.index("def noise_seed(seed: int, item_id: str) -> int:")
    body = src[start:]
    assert '"""' in body.split("\n", 2)[1]  # noise_seed has a docstring to edit
    cosmetic = src[:start] + body.replace('"""', '"""Edited. ', 1)
    cosmetic = cosmetic.replace("\n\n\ndef noise_seed", "\n\n\n# a comment\ndef noise_seed")
    cosmetic = cosmetic.replace("from __future__ import annotations", "from __future__ import (annotations)")
    assert cosmetic != src and _digest(cosmetic) == _digest(src)
    ret = body.index("return ")
    changed = src[:start] + body[:ret] + "return 1 + " + body[ret + len("return "):]
    assert _digest(changed) != _digest(src)
    assert _digest("x = 1\n") != _digest("x = 2\n")


def test_modules_without_result_logic_are_left_out():
    """The registry (BUILTIN_METRICS), errors, the CLI and reporting cannot change an image or a
    score; data.py (noise_seed) and the plugin's own module can."""
    from relbench.plugin.registry import GENERATORS, METRICS

    for reg, name, own in ((GENERATORS, "shapes_oracle", "relbench.generators.shapes"),
                           (METRICS, "pair_mse", "relbench.metrics.pair_mse")):
        modules = ci.code_identity(reg.get(name))["modules"]
        assert {"relbench.spec.data", own} <= set(modules)
        assert not {"relbench.plugin.registry", "relbench.errors", "relbench.cli", "relbench.results.write"} & set(modules)


GEN = """\
\"\"\"A test generator.\"\"\"
from relbench.generators.shapes import ShapesOracle
from relbench.plugin.registry import register_generator


@register_generator("cosmetic_oracle")
class CosmeticOracle(ShapesOracle):
    pass
"""

MET = """\
\"\"\"A test metric.\"\"\"
from relbench.plugin.metric import Aggregate, Metric
from relbench.plugin.registry import register_metric

SCALE = 1.0


@register_metric("cosmetic_mean")
class CosmeticMean(Metric):
    consumes = frozenset({"images"})

    def columns(self):
        return ["cosmetic"]

    def score(self, samples):
        return [{"cosmetic": float(s.image_pos.mean()) * SCALE} for s in samples]

    def aggregates(self):
        return [Aggregate("cosmetic_mean", "cosmetic", higher_is_better=None)]
"""

CONFIG = """\
name: cosmetic
suite: {{kind: shapes, triples_per_predicate: 1}}
seeds: [0]
metrics: [cosmetic_mean]
plugins: [cospkg.gen, cospkg.met]
reference_run: false
runs:
  - {{name: gen, generator: cosmetic_oracle}}
output_dir: {out}
"""


def test_cosmetic_edits_reuse_and_real_edits_redraw_and_rescore(cli, tmp_path):
    import json

    pkg = tmp_path / "cospkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gen.py").write_text(GEN)
    (pkg / "met.py").write_text(MET)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "out"))
    env = {"RELBENCH_CACHE_DIR": str(tmp_path / "cache")}

    def run(*extra):
        res = cli("run", "--config", str(cfg), "--no-report", *extra, env=env)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def value():
        return json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]["gen"]["metrics"]["cosmetic_mean"]["value"]

    assert "gen: images 18 to draw, 0 reused; cosmetic_mean score chunks 1 to compute, 0 reused" in run("--dry-run")
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert "18 images generated, 0 reused" in run()
    first = value()
    chunks = set((tmp_path / "out" / "cache" / "scores").rglob("*.json"))
    # docstrings, comments and formatting: nothing redrawn, nothing rescored
    (pkg / "gen.py").write_text(GEN.replace("A test generator.", "A test generator, described at length.")
                                + "# a comment\n")
    (pkg / "met.py").write_text(MET.replace("SCALE = 1.0", "SCALE = (1.0)  # the scale").replace(
        "    def columns(self):", '    def columns(self):\n        """The column."""'))
    assert "gen: images 0 to draw, 18 reused; cosmetic_mean score chunks 0 to compute, 1 reused" in run("--dry-run")
    assert "0 images generated, 18 reused" in run()
    assert set((tmp_path / "out" / "cache" / "scores").rglob("*.json")) == chunks and value() == first
    # a metric's formula: rescored (same images); the dry run names the module
    (pkg / "met.py").write_text(MET.replace("SCALE = 1.0", "SCALE = 2.0"))
    dry = run("--dry-run")
    assert "cosmetic_mean score chunks 1 to compute, 0 reused" in dry
    assert "metric cosmetic_mean: fingerprint changed: module cospkg.met changed" in dry
    assert "0 images generated, 18 reused" in run()
    assert value() == pytest.approx(2 * first)
    # the generator's code: every image redrawn
    (pkg / "gen.py").write_text(GEN.replace("    pass", "    version = '2'"))
    dry = run("--dry-run")
    assert "gen: images 18 to draw, 0 reused" in dry
    assert "gen (cosmetic_oracle): fingerprint changed: module cospkg.gen changed; version 1 -> 2" in dry
    assert "18 images generated, 0 reused" in run()


def test_dry_run_names_each_changed_part():
    from relbench.engine.dry_run import _changes

    before = {"generator": "g", "version": "1", "args": {"steps": 4, "cfg": 1.0}, "weights": {"sha256": "a"},
              "code": {"modules": {"relbench.spec.data": "d1", "pkg.gen": "g1"}, "libraries": {"torch": "2.1"}}}
    after = {"generator": "g", "version": "1", "args": {"steps": 8, "cfg": 1.0}, "weights": {"sha256": "b"},
             "code": {"modules": {"relbench.spec.data": "d2", "pkg.gen": "g1", "pkg.util": "u1"}, "libraries": {"torch": "2.2"}}}
    recorded = {"fingerprint": "old", "fingerprint_parts": before}
    assert _changes("run (g)", recorded, "new", after) == [
        "run (g): fingerprint changed: module pkg.util added; module relbench.spec.data changed; "
        "library torch 2.1 -> 2.2; argument steps: 4 -> 8; weights changed"]
    assert _changes("run (g)", recorded, "old", after) == []  # the recorded fingerprint: nothing to say
    assert _changes("run (g)", None, "new", after) == []  # no earlier run
    assert _changes("run (g)", {"fingerprint": "old"}, "new", after) == [
        "run (g): fingerprint changed (manifest.json records no parts to compare)"]
