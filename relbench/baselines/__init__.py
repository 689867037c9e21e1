"""Pinned baseline records: published aggregates with no per-sample data (e.g. the seed report).

A record is JSON data (this package's ``*.json``) so it can be read, cited and diffed; the
tests pin its values. ``relbench compare --baseline NAME`` compares runs against one.
"""

from __future__ import annotations

import json
from importlib import resources

from relbench.errors import UserError


def known() -> list[str]:
    """Names of the shipped records (file names without .json), sorted."""
    return sorted(p.name[: -len(".json")] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def load(name: str) -> dict:
    """The record called ``name``; a UserError listing the known names otherwise."""
    names = known()
    if name not in names:
        raise UserError(f"unknown baseline {name!r} (known: {', '.join(names)})")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
