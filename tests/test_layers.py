"""Layers: the core (config, data, runner, store, stats, results and everything they import)
imports no application module (the CLI, the notebook API, reports, trainers); these sit on top.

Checked statically (imports inside functions count: the core imports lazily) and at run time."""

from __future__ import annotations

import subprocess
import sys

from relbench.io.code_identity import import_closure

CORE = ["relbench.spec.config", "relbench.spec.data", "relbench.engine.plan", "relbench.engine.execute", "relbench.engine.store", "relbench.stats.bootstrap", "relbench.results.write"]
APP = ("relbench.cli", "relbench.__main__", "relbench.api", "relbench.reports", "relbench.trainers")


def _is_app(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in APP)


def test_core_imports_no_app_module_statically():
    reached: dict[str, str] = {}
    for core in CORE:
        for module, importer in import_closure(core)[0].items():
            reached.setdefault(module, importer)
    assert len(reached) > 15  # the scan follows the core's imports (registry, suites, shapes, ...)
    # the package's own lazy attributes (relbench.run -> relbench.api) are the one way up
    # (what an app module imports in turn is the app's business: a violation is a non-app importer)
    bad = sorted(m for m, by in reached.items()
                 if _is_app(m) and not _is_app(by) and not (m == "relbench.api" and by == "relbench"))
    assert not bad, [f"{reached[m]} imports {m}" for m in bad]


def test_core_imports_no_app_module_at_run_time():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + f"print(sorted(m for m in sys.modules if m.startswith({APP!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def _within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_plugin_api_imports_only_the_core():
    """What a plugin author imports (relbench.plugin, and the checkers of relbench.testing)
    reaches no application, no model code and no heavy library, even through lazy imports: a
    plugin's tests import it without torch."""
    for root in ("relbench.plugin", "relbench.testing"):
        reached, libraries = import_closure(root)
        assert {"relbench.plugin.generator", "relbench.plugin.metric", "relbench.plugin.contract"} <= reached.keys()
        bad = sorted(m for m in reached if _within(m, APP + ("relbench.models", "relbench.testing.models")))
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
    """relbench.plugin gathers; it defines nothing of its own, so old import paths stay the same objects."""
    import relbench.plugin as api

    for name in api.__all__:
        obj = getattr(api, name)
        assert getattr(obj, "__module__", "relbench.plugin.metric") != "relbench.plugin", name
    from relbench.plugin.generator import Generator
    from relbench.plugin.metric import Metric
    from relbench.plugin.registry import register_metric

    assert (api.Generator, api.Metric, api.register_metric) == (Generator, Metric, register_metric)
