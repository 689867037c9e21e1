"""Reading a suite's text file: UTF-8, with the line of a bad byte named in one line of error."""

from __future__ import annotations

import os
from typing import Iterator

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


def read_lines(path: str | os.PathLike, what: str) -> Iterator[str]:
    """The file's lines as they are read (a run with ``limit`` stops reading at its last item),
    split on "\n" only and without their "\r\n" / "\n"; a byte that is not UTF-8 is a UserError
    naming its line and byte column, as read_text's.

    Only "\n" ends a line: JSON allows a raw U+2028 inside a string, and str.splitlines would cut
    such a line in two and shift every later line number.
    """
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot open {what} ({exc.strerror or exc})") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):  # binary files split on b"\n" alone
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at byte column "
                                f"{exc.start + 1}: {exc.reason}; allowed: a UTF-8 encoded {what})") from None
            yield line.rstrip("\n").removesuffix("\r")
