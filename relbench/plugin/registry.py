"""Name -> plugin class registries for generators and metrics, lazy as lm-evaluation-harness's.

Built-in plugins are declared in the tables below (name -> "module:Class", the extra that
installs what they need, and the import names of those packages); a plugin's module is imported
the first time the plugin is used, so a plugin whose library is missing costs nothing to the
commands that do not use it. Other packages add plugins through the entry-point groups
``relbench.generators`` and ``relbench.metrics``; a config's ``plugins:`` modules register
theirs on import with ``@register_generator`` / ``@register_metric``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from relbench.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """Where a plugin lives, before it is imported."""

    target: str  # "module:Class"
    origin: str  # "built-in", "entry point (dist)", "plugins: module"
    extra: str | None = None  # the relbench extra that installs what it needs
    requires: tuple[str, ...] = ()  # import names checked without importing them


# Built-in plugins. A new file under generators/ or metrics/ needs its line here (a test checks).
BUILTIN_GENERATORS = {
    "shapes_oracle": Entry("relbench.generators.shapes:ShapesOracle", "built-in"),
    "shapes_ignore_relation": Entry("relbench.generators.shapes:ShapesIgnoreRelation", "built-in"),
    "shapes_inverse": Entry("relbench.generators.shapes:ShapesInverse", "built-in"),
    "images": Entry("relbench.generators.images:ImagesGenerator", "built-in"),
    "flux": Entry("relbench.generators.flux:FluxGenerator", "built-in", "models",
                  ("torch", "diffusers", "transformers", "safetensors")),
    "diffusers": Entry("relbench.generators.diffusers_t2i:DiffusersGenerator", "built-in", "models",
                       ("torch", "diffusers", "transformers", "safetensors")),
    "flux_graph_lora": Entry("relbench.generators.flux_graph_lora:FluxGraphLoraGenerator", "built-in", "models",
                             ("torch", "diffusers", "transformers", "safetensors", "peft")),
    "gligen": Entry("relbench.generators.gligen:GligenGenerator", "built-in", "models",
                    ("torch", "diffusers", "transformers", "safetensors")),
}
BUILTIN_METRICS = {
    "pair_mse": Entry("relbench.metrics.pair_mse:PairMSE", "built-in"),
    "spatial": Entry("relbench.metrics.spatial:Spatial", "built-in"),
    "peer_scores": Entry("relbench.metrics.peer_scores:PeerScores", "built-in"),
    "clip_alignment": Entry("relbench.metrics.clip_alignment:ClipAlignment", "built-in", "models",
                            ("torch", "open_clip")),
    "lpips": Entry("relbench.metrics.lpips_pair:Lpips", "built-in", "models", ("torch", "torchvision", "lpips")),
    "vlm_judge": Entry("relbench.metrics.vlm_judge:VlmJudge", "built-in", "models", ("torch", "transformers")),
}


class Registry:
    def __init__(self, kind: str, base: str, group: str, builtins: dict[str, Entry]):
        self.kind, self.base, self.group = kind, base, group
        self._entries: dict[str, Entry] = dict(builtins)
        self._classes: dict[str, type] = {}
        self._entry_points_read = False

    # registration ------------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: the class must subclass the plugin base; a name is taken once."""

        def deco(cls: T) -> T:
            self._check_class(name, cls)
            known = self._entries.get(name)
            taken = name in self._classes and _target(self._classes[name]) != _target(cls)
            if taken or (known is not None and known.target != _target(cls)):
                here = _place(cls)
                there = _place(self._classes[name]) if name in self._classes else f"{known.target} ({known.origin})"
                raise UserError(f"{self.kind} {name!r} is defined twice: {there} and {here}")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            if known is None:
                self._entries[name] = Entry(_target(cls), f"plugins: {cls.__module__}")
            return cls

        return deco

    def _check_class(self, name: str, cls) -> None:
        mod, _, attr = self.base.partition(":")
        base = getattr(importlib.import_module(mod), attr)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise UserError(f"{self.kind} {name!r}: {_place(cls)} must subclass {mod}.{attr}")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:  # refused when registered, before any run builds it
            raise UserError(f"{self.kind} {name!r}: {_place(cls)} does not implement {', '.join(missing)} "
                            f"(required by {mod}.{attr})")

    # lookup ------------------------------------------------------------------------------------
    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            where = f"entry point of {ep.dist.name if ep.dist else 'an installed package'}"
            known = self._entries.get(ep.name)
            if known is not None and known.target != ep.value:
                raise UserError(f"{self.kind} {ep.name!r} is defined twice: {known.target} ({known.origin}) "
                                f"and {ep.value} ({where})")
            self._entries.setdefault(ep.name, Entry(ep.value, where))

    def entries(self) -> dict[str, Entry]:
        """Every known plugin, nothing imported."""
        self._read_entry_points()
        return dict(sorted(self._entries.items()))

    def names(self) -> list[str]:
        return list(self.entries())

    def load(self, name: str) -> type:
        """The plugin class, importing its module now; UserError (one line) if it cannot be."""
        if name in self._classes:
            return self._classes[name]
        entry = self._entries.get(name)
        if entry is None:
            self._read_entry_points()
            entry = self._entries.get(name)
        if entry is None:
            raise UserError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})")
        missing = [r for r in entry.requires if not _installed(r)]
        if missing:
            raise UserError(f"{self.kind} {name!r} is unavailable: needs the package {missing[0]!r}{_hint(entry)}")
        mod, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(mod)
        except ImportError as exc:
            what = f"needs the package {exc.name!r}" if exc.name and exc.name != mod else f"cannot import {mod}: {exc}"
            raise UserError(f"{self.kind} {name!r} is unavailable: {what}{_hint(entry)}") from None
        if name not in self._classes:  # declared, not decorated: register it now (same checks)
            cls = getattr(module, attr, None)
            if cls is None:
                raise UserError(f"{self.kind} {name!r}: {mod} has no {attr} ({entry.origin})")
            self.register(name)(cls)
        return self._classes[name]

    def get(self, name: str, where: str = "") -> type:
        try:
            return self.load(name)
        except UserError as exc:
            raise UserError(f"{where}: {exc}" if where else str(exc)) from None

    def status(self) -> list[tuple[str, Entry, type | None, str | None]]:
        """(name, entry, class or None, why unavailable or None) of every plugin, for `relbench list`."""
        out = []
        for name, entry in self.entries().items():
            try:
                out.append((name, entry, self.load(name), None))
            except UserError as exc:
                out.append((name, entry, None, str(exc).split(" is unavailable: ", 1)[-1]))
        return out


@contextmanager
def needs_packages(registry: Registry, name: str):
    """Around a plugin's calls: a library it imports lazily and that is missing is one line."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "relbench":  # our own bug, not a missing library
            raise
        entry = registry._entries.get(name)
        raise UserError(f"{registry.kind} {name!r} needs the package {exc.name.split('.')[0]!r}"
                        f"{_hint(entry) if entry else ''}") from None


def _installed(top: str) -> bool:
    if top in sys.modules:
        return sys.modules[top] is not None  # None: import blocked
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _hint(entry: Entry) -> str:
    return f" (pip install 'relbench[{entry.extra}]')" if entry.extra else ""


def _target(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _place(obj) -> str:
    """'module:Class (file:line)', to say where a plugin was defined."""
    if not isinstance(obj, type):
        return repr(obj)
    try:
        import inspect

        return f"{_target(obj)} ({inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]})"
    except (OSError, TypeError):
        return _target(obj)


GENERATORS = Registry("generator", "relbench.plugin.generator:Generator", "relbench.generators", BUILTIN_GENERATORS)
METRICS = Registry("metric", "relbench.plugin.metric:Metric", "relbench.metrics", BUILTIN_METRICS)

register_generator = GENERATORS.register
register_metric = METRICS.register


def load_plugin_modules(modules: list[str], search: list[Path] | tuple[Path, ...] = ()) -> None:
    """Import the config's ``plugins:`` modules, which register on import.

    ``search`` (the config file's directory, then the working directory) goes first on the
    import path, so a plugin beside its config resolves the same under the ``relbench`` script
    and ``python -m relbench``.
    """
    for d in reversed([str(Path(p).resolve()) for p in search]):
        if d in sys.path:
            sys.path.remove(d)
        sys.path.insert(0, d)
    if search:
        importlib.invalidate_caches()
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            where = ", ".join(str(p) for p in search) or "the import path"
            raise UserError(f"plugins: cannot import {mod!r} (looked in {where} first): {exc}") from None


def summary_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
