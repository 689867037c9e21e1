"""Reading a suite's text file: UTF-8, with the line of a bad byte named in one line of error."""

from __future__ import annotations

import os

from relbench.errors import UserError


def read_text(path: str | os.PathLike, what: str) -> str:
    """The file's text; a UserError naming the line and byte column of the first byte that is
    not UTF-8 (``what`` names the file: "JSONL suite")."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot open {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at byte column {column}: "
                        f"{exc.reason}; allowed: a UTF-8 encoded {what})") from None


def read_lines(path: str | os.PathLike, what: str) -> list[str]:
    """read_text's lines, split on "\n" only and without their "\r\n" / "\n".

    Only "\n" ends a line: JSON allows a raw U+2028 inside a string, and str.splitlines would cut
    such a line in two and shift every later line number.
    """
    lines = read_text(path, what).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
