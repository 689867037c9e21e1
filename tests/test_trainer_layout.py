"""The trainer package's boundaries: what is imported from outside a package is public (no
underscore), and no trainer module grows past 400 lines (one module per job)."""

from __future__ import annotations

import ast

from conftest import ROOT

DIRS = ("relbench", "generators", "metrics", "trainers", "reports", "tests", "benchmarks")


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def _package_of(path) -> str:
    """The dotted installed package a file belongs to (trainers/ installs as relbench.trainers)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1])
    if parts and parts[0] in ("generators", "metrics", "trainers", "reports"):
        parts = ["relbench", *parts]
    return ".".join(parts)


def test_no_private_trainer_module_is_imported_from_outside_its_package():
    bad = []
    for d in DIRS:
        for path in (ROOT / d).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            here = _package_of(path)
            for line, module, names in _imports(path):
                if not module.startswith("relbench.trainers"):
                    continue
                dotted = module.split(".")
                for i, part in enumerate(dotted):
                    owner = ".".join(dotted[:i])
                    if part.startswith("_") and not here.startswith(owner):
                        bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
                if any(n.startswith("_") for n in names) and not here.startswith(module):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {names}")
    assert not bad, bad


def test_trainer_modules_stay_under_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "trainers").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
