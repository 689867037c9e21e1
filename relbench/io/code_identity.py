"""What a plugin's cache keys change with when its code changes.

The digest covers the code of the plugin's module and, transitively, of every module it
imports within ``relbench`` and within the plugin's own top-level package, imports inside
functions included (plugins import lazily). Code, not text: each module is hashed as its
syntax tree without docstrings (``ast.dump`` leaves out comments and formatting), so editing a
comment or a docstring redraws no image; the digests are cached by (path, size, mtime_ns)
beside the weight digests (relbench.io.content_hash), so a rerun parses nothing. Modules that
hold no result logic (the registry, errors, the command line, reporting, file writing,
fingerprinting itself) are neither hashed nor followed. Third-party libraries are not hashed
(a site-packages tree is large and is not where a benchmark's code is edited); the installed
version of each one imported is recorded instead. Modules are read without being imported,
and each module once per process.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import sys
from functools import lru_cache

# import name -> distribution name, where they differ (no scan of every installed distribution)
_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "open_clip": "open_clip_torch", "sklearn": "scikit-learn",
                  "cv2": "opencv-python", "skimage": "scikit-image"}


#: relbench modules that cannot change an image or a score: not hashed, not followed
_NO_RESULT_LOGIC = ("relbench.plugin.registry", "relbench.errors", "relbench.cli", "relbench.io.code_identity",
                    "relbench.io.atomic", "relbench.io.content_hash", "relbench.results", "relbench.stats.paired",
                    "relbench.stats.records", "relbench.reports", "relbench.annotate")


def _within(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


@lru_cache(maxsize=None)
def _spec(name: str):
    """The module's spec without importing it (find_spec imports the parent package only)."""
    parent = name.rpartition(".")[0]
    if parent and not _is_package(parent):
        return None  # `from relbench.plugin.metric import Aggregate`: an attribute, not a module
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None


def _is_package(name: str) -> bool:
    spec = _spec(name)
    return spec is not None and spec.submodule_search_locations is not None


@lru_cache(maxsize=None)
def _imports(name: str) -> tuple[bytes, tuple[tuple[str, tuple[str, ...]], ...]]:
    """(source bytes, (module, names imported from it) of every import statement) of one module."""
    spec = _spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return b"", ()
    with open(spec.origin, "rb") as f:
        source = f.read()
    package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    # a regular expression, not ast.parse (5x slower, and this runs on every rerun); an import
    # quoted in a docstring at most adds a module to the digest, never drops one
    for m in _IMPORT.finditer(source.decode("utf-8", "replace")):
        if m["plain"]:
            found += [(n.split()[0], ()) for n in m["plain"].split(",") if n.strip()]
            continue
        dots, base = len(m["dots"]), m["base"] or ""
        if dots:
            anchor = package.split(".")[: len(package.split(".")) - (dots - 1)]
            base = ".".join(anchor + ([base] if base else []))
        names = re.sub(r"#[^\n]*", "", m["paren"] or m["names"] or "").replace("\\", " ").split(",")
        found.append((base, tuple(n.split()[0] for n in names if n.strip() and n.split()[0] != "*")))
    return source, tuple(found)


_IMPORT = re.compile(
    r"^[ \t]*(?:import[ \t]+(?P<plain>[\w., \t]+?)[ \t]*(?:#.*)?$"
    r"|from[ \t]+(?P<dots>\.*)(?P<base>[\w.]*)[ \t]+import[ \t]+(?:\((?P<paren>(?:[^)#]|#[^\n]*)*)\)|(?P<names>[\w., \t\\]+)))",
    re.MULTILINE,
)


@lru_cache(maxsize=None)
def _installed_versions() -> dict[str, str]:
    """Normalised distribution name -> version, from the names of the *.dist-info folders on the
    path (reading each METADATA file, as importlib.metadata.version does, costs ~10 ms apiece)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info") and "-" in n:
                dist, _, ver = n[: -len(".dist-info")].partition("-")
                found.setdefault(_normalise(dist), ver)
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _version(top: str) -> str:
    ver = _installed_versions().get(_normalise(_DISTRIBUTIONS.get(top, top)))
    if ver is None:
        ver = str(getattr(sys.modules.get(top), "__version__", "unknown"))
    return ver


@lru_cache(maxsize=None)
def import_closure(root: str, skip: tuple[str, ...] = ()) -> tuple[dict[str, str], frozenset[str]]:
    """Modules reachable from ``root`` through imports within relbench and root's own top-level
    package (module -> the module that first imports it), not through the modules (and packages)
    in ``skip``, and the other top-level names imported (third-party libraries; the standard
    library left out)."""
    own = {"relbench", root.split(".")[0]}
    stdlib = sys.stdlib_module_names
    seen: dict[str, str] = {}
    libraries: set[str] = set()
    todo = [(root, "")]
    while todo:
        name, importer = todo.pop()
        if name in seen or (importer and _within(name, skip)):
            continue
        seen[name] = importer
        for base, names in _imports(name)[1]:
            top = base.split(".")[0]
            if top in own:  # only our own modules are located (locating imports their parent package)
                found = [base] + [f"{base}.{n}" for n in names if _is_package(base)]
                todo += [(m, name) for m in found if _spec(m)]
            elif top and top not in stdlib and top != "__future__":
                libraries.add(top)
    return seen, frozenset(libraries)


class _StripDocstrings(ast.NodeTransformer):
    """Drop statements that are a bare string (docstrings and the like): they compute nothing."""

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node


def _code_digest(fh) -> str:
    source = fh.read()
    try:
        tree = _StripDocstrings().visit(ast.parse(source))
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()  # not Python we can parse: its bytes, then
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


@lru_cache(maxsize=None)
def module_digests(root: str, skip: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """((module, digest of its code), ...) over root's import closure, by name."""
    from relbench.io.content_hash import cached_digests

    names = [n for n in sorted(import_closure(root, skip)[0]) if _imports(n)[0]]
    origins = [_spec(n).origin for n in names]
    return tuple((n, d[:16]) for n, d in zip(names, cached_digests(origins, "code", _code_digest)))


@lru_cache(maxsize=None)
def module_identity(root: str, skip: tuple[str, ...] = ()) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(digest of the code in root's import closure, ((library, version), ...))."""
    digest = hashlib.sha256()
    for name, d in module_digests(root, skip):
        digest.update(f"{name}\0{d}\0".encode())
    _, libraries = import_closure(root, skip)
    return digest.hexdigest()[:32], tuple(sorted((lib, _version(lib)) for lib in libraries))


def code_identity(cls: type) -> dict:
    """The code behind ``cls`` (its module and its bases' modules, with their relbench and
    same-package imports) as a digest per module, and the versions of the libraries they import:
    a changed fingerprint can name the module that changed."""
    roots = sorted({c.__module__ for c in cls.__mro__ if c.__module__ not in ("builtins", "__main__")})
    libraries = {lib for r in roots for lib in module_identity(r, _NO_RESULT_LOGIC)[1]}
    return {"modules": dict(sorted({m for r in roots for m in module_digests(r, _NO_RESULT_LOGIC)})),
            "libraries": dict(sorted(libraries))}
