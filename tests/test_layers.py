"""Layers: the core (config, data, runner, store, stats, results and everything they import)
imports no application module (the CLI, the notebook API, reports, trainers); these sit on top.

Checked statically (imports inside functions count: the core imports lazily) and at run time."""

from __future__ import annotations

import subprocess
import sys

from relbench.code_identity import _imports, _is_package, _spec

CORE = ["relbench.config", "relbench.data", "relbench.runner", "relbench.store", "relbench.stats", "relbench.results"]
APP = ("relbench.cli", "relbench.__main__", "relbench.api", "relbench.reports", "relbench.trainers")


def _is_app(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in APP)


def test_core_imports_no_app_module_statically():
    seen, todo, edges = set(), list(CORE), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for base, names in _imports(name)[1]:
            if base.split(".")[0] != "relbench":
                continue
            if base == "relbench" and {"run", "load_run", "RunFrames"} & set(names):
                edges.setdefault("relbench.api", name)
                todo.append("relbench.api")
            for m in [base] + [f"{base}.{n}" for n in names if _is_package(base)]:
                if m != "relbench" and _spec(m) is not None:  # the package's lazy API: checked above
                    edges.setdefault(m, name)
                    todo.append(m)
    assert len(seen) > 15  # the scan follows the core's imports (registry, suites, shapes, ...)
    bad = sorted(m for m in seen if _is_app(m))
    assert not bad, [f"{edges[m]} imports {m}" for m in bad]


def test_core_imports_no_app_module_at_run_time():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + f"print(sorted(m for m in sys.modules if m.startswith({APP!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
