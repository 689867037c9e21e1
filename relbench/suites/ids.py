"""What a suite item's id may be, and the one rule every reader shares: ids are unique.

An id names a case in samples.csv, in reports and in annotation files, so it must survive
every one of them as one short line of text: a control character (a carriage return, say)
or a thousand characters would break a row or a table; two items with one id would be
merged into one case.
"""

from __future__ import annotations

from relbench.errors import UserError

MAX_LENGTH = 200
HELP = f"allowed: printable text without control characters, 1 to {MAX_LENGTH} characters, unique in the file"


def id_problem(item_id: str) -> str | None:
    """What is wrong with ``item_id`` (a phrase that shows the id), or None when it is valid."""
    shown = repr(item_id) if len(item_id) <= 60 else repr(item_id[:60]) + "..."
    if not item_id:
        return "must not be empty"
    if len(item_id) > MAX_LENGTH:
        return f"{shown} is {len(item_id)} characters long"
    bad = next((c for c in item_id if not c.isprintable()), None)
    if bad is not None:
        return f"{shown} holds the non-printable character {bad!r}"
    return None


def check_id(item_id: str, where: str) -> str:
    """``item_id``, or a UserError at ``where`` ('FILE:LINE') saying what is wrong with it."""
    problem = id_problem(item_id)
    if problem:
        raise UserError(f"{where}: id: {problem} ({HELP})")
    return item_id


class UniqueIds:
    """Ids seen so far in one file, each with the line it was first seen on."""

    def __init__(self, path: str, unit: str = "line"):
        self.path, self.unit = str(path), unit  # unit: "line", or "entry" of a JSON list
        self._first: dict[str, int] = {}

    def where(self, line: int) -> str:
        """'FILE:LINE', or 'FILE: entry N' where the records are not lines."""
        return f"{self.path}:{line}" if self.unit == "line" else f"{self.path}: {self.unit} {line}"

    def add(self, item_id: str, line: int) -> None:
        """Record ``item_id`` from ``line``; a UserError naming both lines when it was seen before."""
        first = self._first.setdefault(item_id, line)
        if first != line:
            on = "on line" if self.unit == "line" else f"in {self.unit}"
            raise UserError(f"{self.where(line)}: id: duplicate id {item_id!r} (first {on} {first}; allowed: unique ids)")
