"""Layers: every package of the relbench namespace has a rank, and imports only its own rank or
lower; the core (ranks 0-5) imports no application; no two modules import each other, even
through imports inside functions (the core imports lazily, so those count).

    0 errors, io, baselines        what everything stands on (atomic writes, locks, digests)
    1 spec                         what a benchmark asks: data, vocabulary, rules, config
    2 plugin, suites, shapes, vg   the plugin API; suites and the worlds they read
    3 engine, models, testing      running a plan; nn modules and loading; plugin checkers
    4 stats                        numbers in, numbers out
    5 results                      run directories written, aggregated, read, formatted
    6 the applications and plugins: cli, api, reports, trainers, annotate, lab, generators, metrics

Checked statically over the source tree (a package missing from the table fails) and, for the
core's lightness, at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the installed package it becomes (the design card's top-level folders)
FOLDERS = {"relbench": "relbench", "generators": "relbench.generators", "metrics": "relbench.metrics",
           "trainers": "relbench.trainers", "reports": "relbench.reports"}
RANK = {
    "relbench.errors": 0, "relbench.io": 0, "relbench.baselines": 0,
    "relbench.spec": 1,
    "relbench.plugin": 2, "relbench.suites": 2, "relbench.shapes": 2, "relbench.vg": 2,
    "relbench.engine": 3, "relbench.models": 3, "relbench.testing": 3,
    "relbench.stats": 4,
    "relbench.results": 5,
    "relbench.cli": 6, "relbench.__main__": 6, "relbench.api": 6, "relbench.reports": 6, "relbench.trainers": 6,
    "relbench.annotate": 6, "relbench.lab": 6, "relbench.generators": 6, "relbench.metrics": 6,
}
APP = 6


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            if folder == "relbench" and parts and f"relbench.{parts[0]}" in FOLDERS.values():
                continue  # a stray build copy, never the source
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """relbench modules a file imports anywhere (inside functions too); `from pkg import mod` is the module."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m in MODULES and m != "relbench"}  # `from relbench import x` is x


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


def test_every_package_has_a_rank():
    packages = {_package(m) for m in MODULES} - {"relbench"}
    assert packages - RANK.keys() == set(), "give each new package a rank in tests/test_layers.py"
    assert len(packages) >= 20


def test_no_package_imports_a_higher_rank():
    bad = sorted(f"{m} imports {t}" for m, ts in GRAPH.items() if m != "relbench" for t in ts
                 if RANK[_package(t)] > RANK[_package(m)])
    assert not bad, bad


def test_the_core_imports_no_application():
    core = [m for m in MODULES if m != "relbench" and RANK[_package(m)] < APP]
    assert len(core) > 60
    bad = sorted(f"{m} imports {t}" for m in core for t in GRAPH[m] if RANK[_package(t)] == APP)
    assert not bad, bad


def test_reports_read_only_files():
    """A front end reads run directories (results) and formats them; it runs nothing and trains nothing."""
    bad = sorted(f"{m} imports {t}" for m in MODULES if _package(m) == "relbench.reports" for t in GRAPH[m]
                 if _package(t) in {"relbench.engine", "relbench.models", "relbench.trainers", "relbench.cli",
                                    "relbench.lab", "relbench.annotate", "relbench.generators", "relbench.metrics"})
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_planted_upward_import_is_caught(tmp_path):
    """The scan reads imports inside functions, where the core's lazy imports are."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from relbench.cli.run import cmd_run\n    from relbench.spec import data\n")
    assert _imports(f) == {"relbench.cli.run", "relbench.spec", "relbench.spec.data"}


CORE = ["relbench.spec.config", "relbench.spec.data", "relbench.engine.plan", "relbench.engine.execute",
        "relbench.engine.store", "relbench.stats.bootstrap", "relbench.results.write", "relbench.results.read"]


def test_core_imports_no_app_module_at_run_time():
    apps = tuple(p for p, r in RANK.items() if r == APP)
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + f"print(sorted(m for m in sys.modules if m.startswith({apps!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("root", ["relbench.plugin", "relbench.testing"])
def test_plugin_api_imports_only_the_core(root):
    """What a plugin author imports (relbench.plugin, and the checkers of relbench.testing)
    reaches no application, no model code and no heavy library, even through lazy imports: a
    plugin's tests import it without torch."""
    from relbench.io.code_identity import import_closure

    reached, libraries = import_closure(root)
    if root == "relbench.plugin":  # its names resolve lazily: follow the modules it names
        import relbench.plugin as api

        for module in api._HOMES:
            more, libs = import_closure(module)
            reached.update(more)
            libraries |= libs
    assert {"relbench.plugin.generator", "relbench.plugin.metric", "relbench.plugin.contract"} <= reached.keys()
    bad = sorted(m for m in reached if RANK.get(_package(m)) == APP or m.startswith(("relbench.models",
                                                                                    "relbench.testing.models")))
    assert not bad, [f"{reached[m]} imports {m}" for m in bad]
    assert libraries <= {"numpy", "PIL", "pydantic", "yaml"}, (root, sorted(libraries))


def test_plugin_api_import_loads_no_library():
    code = ("import sys\nimport relbench.plugin\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'PIL', 'torch', 'pandas')"
            " or m.startswith('relbench.testing.models')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_plugin_api_names_are_the_home_modules_objects():
    """relbench.plugin gathers; it defines nothing of its own, and every name it lists resolves."""
    import relbench.plugin as api

    for name in api.__all__:
        obj = getattr(api, name)
        assert getattr(obj, "__module__", "relbench.plugin.metric") != "relbench.plugin", name
    from relbench.plugin.generator import Generator
    from relbench.plugin.metric import Metric
    from relbench.plugin.registry import register_metric

    assert (api.Generator, api.Metric, api.register_metric) == (Generator, Metric, register_metric)
    with pytest.raises(AttributeError):
        api.NotAName  # noqa: B018


def test_no_module_over_400_lines_unless_it_says_why():
    long = {m: len(p.read_text().splitlines()) for m, p in MODULES.items() if len(p.read_text().splitlines()) > 400}
    silent = sorted(m for m in long if "Over 400 lines:" not in (ast.get_docstring(ast.parse(MODULES[m].read_text())) or ""))
    assert not silent, {m: long[m] for m in silent}
