"""A line of a peer's prompt file that relbench could not turn into a graph, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Rejected:
    """A line of a peer's file that relbench could not turn into a graph, and why."""

    line: int  # 1-based line (JSONL / text) or list index + 1 (JSON list)
    reason: str
    text: str


def json_object(raw: str) -> dict | None:
    """The JSON object on one line, or None for anything else (invalid, too deep, a list...)."""
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None
