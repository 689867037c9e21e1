"""Name -> plugin class registries for generators and metrics.

Built-in plugins are single files in the ``generators`` and ``metrics`` packages that register
themselves with a decorator on import; other packages add plugins through the entry-point groups
``relbench.generators`` and ``relbench.metrics``. Discovery imports plugin modules, so plugin
modules must keep heavy imports (torch, diffusers, open_clip) inside functions.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Callable, TypeVar

from relbench.errors import UserError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str, package: str, group: str):
        self.kind, self.package, self.group = kind, package, group
        self._entries: dict[str, type] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not cls and _qualname(existing) != _qualname(cls):
                raise ValueError(f"{self.kind} {name!r} registered twice ({_qualname(existing)}, {_qualname(cls)})")
            cls.name = name  # type: ignore[attr-defined]
            self._entries[name] = cls
            return cls

        return deco

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for ep in entry_points(group=self.group):
            obj = ep.load()
            if isinstance(obj, type) and ep.name not in self._entries:
                self.register(ep.name)(obj)

    def get(self, name: str, where: str = "") -> type:
        self.discover()
        if name not in self._entries:
            prefix = f"{where}: " if where else ""
            raise UserError(f"{prefix}unknown {self.kind} {name!r} (known: {', '.join(sorted(self._entries))})")
        return self._entries[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, type]]:
        self.discover()
        return sorted(self._entries.items())


def _qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


GENERATORS = Registry("generator", "relbench.generators", "relbench.generators")
METRICS = Registry("metric", "relbench.metrics", "relbench.metrics")

register_generator = GENERATORS.register
register_metric = METRICS.register


def load_plugin_modules(modules: list[str]) -> None:
    """Import user plugin modules named in benchmark.yaml (`plugins:`), which register on import."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise UserError(f"plugins: cannot import {mod!r}: {exc}") from None


def summary_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
