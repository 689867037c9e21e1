"""What a plugin's cache keys change with when its code changes.

The digest covers the source of the plugin's module and, transitively, of every module it
imports within ``relbench`` and within the plugin's own top-level package, imports inside
functions included (plugins import lazily). Third-party libraries are not hashed (a
site-packages tree is large and is not where a benchmark's code is edited); the installed
version of each one imported is recorded instead. Modules are read without being imported,
and each module once per process, so a rerun of a finished run stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from functools import lru_cache

# import name -> distribution name, where they differ (no scan of every installed distribution)
_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "open_clip": "open_clip_torch", "sklearn": "scikit-learn",
                  "cv2": "opencv-python", "skimage": "scikit-image"}


@lru_cache(maxsize=None)
def _spec(name: str):
    """The module's spec without importing it (find_spec imports the parent package only)."""
    parent = name.rpartition(".")[0]
    if parent and not _is_package(parent):
        return None  # `from relbench.metric import Aggregate`: an attribute, not a module
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
def import_closure(root: str) -> tuple[dict[str, str], frozenset[str]]:
    """Modules reachable from ``root`` through imports within relbench and root's own top-level
    package (module -> the module that first imports it), and the other top-level names imported
    (third-party libraries; the standard library left out)."""
    own = {"relbench", root.split(".")[0]}
    stdlib = sys.stdlib_module_names
    seen: dict[str, str] = {}
    libraries: set[str] = set()
    todo = [(root, "")]
    while todo:
        name, importer = todo.pop()
        if name in seen:
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


@lru_cache(maxsize=None)
def module_identity(root: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(digest of the sources in root's import closure, ((library, version), ...))."""
    modules, libraries = import_closure(root)
    digest = hashlib.sha256()
    for name in sorted(modules):
        source = _imports(name)[0]
        if source:
            digest.update(name.encode() + b"\0" + hashlib.sha256(source).digest())
    return digest.hexdigest()[:32], tuple(sorted((lib, _version(lib)) for lib in libraries))


def code_identity(cls: type) -> dict:
    """Digest of the source behind ``cls`` (its module and its bases' modules, with their
    relbench and same-package imports) and the versions of the libraries they import."""
    modules = sorted({c.__module__ for c in cls.__mro__ if c.__module__ not in ("builtins", "__main__")})
    parts = [module_identity(m) for m in modules]
    return {
        "source": hashlib.sha256("".join(p[0] for p in parts).encode()).hexdigest()[:32],
        "libraries": dict(sorted({lib for p in parts for lib in p[1]})),
    }
