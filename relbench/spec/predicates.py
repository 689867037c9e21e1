"""The predicate vocabulary: names, aliases, symmetry, inverses, geometry and contrasts.

The vocabulary is data (``relbench/spec/vocab/predicates.yaml``) so a benchmark can extend it;
everything that needs to know about a predicate (negatives, prompts, spatial rules) asks here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Mapping

from relbench.errors import UserError


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive key for names ("Sitting  On" -> "sitting on")."""
    return re.sub(r"[\s_]+", " ", str(text).strip().lower())


@dataclass(frozen=True)
class Predicate:
    name: str
    aliases: tuple[str, ...] = ()
    phrase: str | None = None
    symmetric: bool = False
    inverse: str | None = None
    geometric: bool = False
    contrast: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """How the predicate reads inside a prompt."""
        return self.phrase or self.name


@dataclass
class Vocabulary:
    predicates: dict[str, Predicate] = field(default_factory=dict)
    _alias: dict[str, str] = field(default_factory=dict)

    def add(self, pred: Predicate) -> None:
        """Add or replace a predicate; its aliases take precedence over older ones."""
        name = normalise(pred.name)
        if name != pred.name:
            pred = Predicate(**{**pred.__dict__, "name": name})
        self.predicates[name] = pred
        self._alias[name] = name
        for alias in pred.aliases:
            self._alias[normalise(alias)] = name

    def resolve(self, text: str) -> str | None:
        return self._alias.get(normalise(text))

    def get(self, text: str, where: str = "") -> Predicate:
        """The predicate named or aliased by ``text``; a clear error listing near names if unknown."""
        name = self.resolve(text)
        if name is None:
            prefix = f"{where}: " if where else ""
            # suggest names from the printed list; an alias is shown as the name it stands for
            near = {}
            for match in difflib.get_close_matches(normalise(text), list(self._alias), n=6):
                canonical = self._alias[match]
                near.setdefault(canonical, repr(canonical) if match == canonical else f"{canonical!r} (alias {match!r})")
            shown = list(near.values())[:3]
            hint = f"; did you mean {', '.join(shown)}?" if shown else ""
            raise UserError(
                f"{prefix}unknown predicate {text!r} (known: {', '.join(sorted(self.predicates))}){hint}"
            )
        return self.predicates[name]

    def __contains__(self, text: str) -> bool:
        return self.resolve(text) is not None

    def names(self) -> list[str]:
        return list(self.predicates)

    def check(self) -> None:
        """Every inverse and contrast must name a known predicate."""
        for p in self.predicates.values():
            for ref in ([p.inverse] if p.inverse else []) + list(p.contrast):
                if ref not in self:
                    raise UserError(f"predicate {p.name!r}: refers to unknown predicate {ref!r}")


def predicate_from_mapping(entry: Mapping, where: str = "predicates") -> Predicate:
    allowed = {"name", "aliases", "phrase", "symmetric", "inverse", "geometric", "contrast"}
    unknown = set(entry) - allowed
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(allowed)})")
    if "name" not in entry:
        raise UserError(f"{where}: every predicate needs a 'name'")
    for key in ("name", "inverse", "phrase"):
        if isinstance(entry.get(key), bool):
            raise UserError(f"{where}.{key}: got a boolean; quote the word (YAML reads on/off/yes/no as true/false)")
    for key in ("aliases", "contrast"):
        if any(isinstance(a, bool) for a in entry.get(key) or ()):
            raise UserError(f"{where}.{key}: got a boolean; quote the word (YAML reads on/off/yes/no as true/false)")
    return Predicate(
        name=normalise(entry["name"]),
        aliases=tuple(normalise(a) for a in entry.get("aliases") or ()),
        phrase=entry.get("phrase"),
        symmetric=bool(entry.get("symmetric", False)),
        inverse=normalise(entry["inverse"]) if entry.get("inverse") else None,
        geometric=bool(entry.get("geometric", False)),
        contrast=tuple(normalise(c) for c in entry.get("contrast") or ()),
    )


def default_entries() -> list[dict]:
    import yaml

    text = resources.files("relbench.spec.vocab").joinpath("predicates.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_vocabulary(extra: Iterable[Mapping | Predicate] = ()) -> Vocabulary:
    """The shipped vocabulary, extended (or overridden by name) with ``extra`` entries."""
    vocab = Vocabulary()
    for entry in default_entries():
        vocab.add(predicate_from_mapping(entry, "relbench/spec/vocab/predicates.yaml"))
    for i, entry in enumerate(extra):
        vocab.add(entry if isinstance(entry, Predicate) else predicate_from_mapping(entry, f"predicates.{i}"))
    vocab.check()
    return vocab


#: the 16 predicates of the origin experiment (the seed report that started relbench; its records
#: keep their names, seed-10ep-quick and seed-20ep)
ORIGIN_PREDICATES = (
    "above", "near", "behind", "below", "carrying", "eating", "hanging from", "holding", "in",
    "in front of", "looking at", "on", "riding", "sitting on", "standing on", "wearing",
)
