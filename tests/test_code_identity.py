"""Plugin code identity: the import scan finds what Python's parser finds, the digest follows
relbench and same-package imports, and libraries are recorded by version, not hashed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import relbench.code_identity as ci

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
    (pkg / "plugin.py").write_text("import numpy\n\ndef f():\n    from .helper import X\n    from relbench.data import Triple\n")
    (pkg / "helper.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    digest, libs = ci.module_identity("idpkg.plugin")
    assert dict(libs) == {"numpy": __import__("numpy").__version__}
    # the closure: the plugin, its package helper, and relbench.data with what it imports
    for cached in (ci.module_identity, ci.import_closure, ci._imports):
        cached.cache_clear()
    (pkg / "helper.py").write_text("X = 2\n")
    assert ci.module_identity("idpkg.plugin")[0] != digest
    data_source, _ = ci._imports("relbench.data")
    assert data_source == (ROOT / "relbench" / "data.py").read_bytes()
