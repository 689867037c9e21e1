"""Layers: the core (config, data, runner, store, stats, results and everything they import)
imports no application module (the CLI, the notebook API, reports, trainers); these sit on top.

Checked statically (imports inside functions count: the core imports lazily) and at run time."""

from __future__ import annotations

import subprocess
import sys

from relbench.code_identity import import_closure

CORE = ["relbench.config", "relbench.data", "relbench.runner", "relbench.store", "relbench.stats", "relbench.results"]
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
    bad = sorted(m for m, by in reached.items() if _is_app(m) and not (m == "relbench.api" and by == "relbench"))
    assert not bad, [f"{reached[m]} imports {m}" for m in bad]


def test_core_imports_no_app_module_at_run_time():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + f"print(sorted(m for m in sys.modules if m.startswith({APP!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
