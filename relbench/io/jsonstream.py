"""Stream the elements of a top-level JSON array without loading the whole file.

Visual Genome's relationships.json is one ~700 MB array; ``json.load`` would hold the text and
the parsed tree at once. Here the file is decoded in chunks and each element is parsed with the
C scanner (``json.JSONDecoder.raw_decode``), so only one element is parsed at a time and the
reader needs no extra dependency (``ijson`` is fast only with its yajl2 C backend, which is not
always installable; its pure-Python backend is several times slower than this).
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from typing import Any, Iterator

from relbench.errors import UserError

_WS = " \t\n\r"


def iter_json_array(
    path: str | os.PathLike,
    chunk_size: int = 1 << 20,
    max_element: int = 64 << 20,
    progress: str | None = None,
) -> Iterator[Any]:
    """Yield each element of the JSON array stored in ``path``, in order.

    ``max_element`` (characters) bounds the buffer, so a corrupt file fails fast instead of
    being read whole into memory. ``progress`` names a tqdm bar over bytes read (shown only on
    a terminal). Errors are ``UserError`` naming the file and line.
    """
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror})") from None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc=progress, disable=None)
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    buf, pos, eof = "", 0, False
    lines_before = 0  # newlines in text already dropped from the buffer
    cut_column = 0  # characters of the buffer's first line that were already dropped

    def more() -> bool:
        nonlocal buf, pos, eof, lines_before, cut_column
        if eof:
            return False
        raw = fh.read(chunk_size)
        if bar is not None:
            bar.update(len(raw))
        try:
            text = utf8.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
        if not raw:
            eof = True
        if pos > len(buf) // 2:  # drop consumed text so the buffer stays about one element long
            lines_before += buf.count("\n", 0, pos)
            last = buf.rfind("\n", 0, pos)
            cut_column = pos - last - 1 if last >= 0 else cut_column + pos
            buf, pos = buf[pos:], 0
        buf += text
        return bool(raw) or bool(text)

    def line() -> int:
        return lines_before + buf.count("\n", 0, pos) + 1

    def line_column(at: int) -> str:
        """'LINE:COLUMN' of buffer position ``at``; an error at the end of the text is placed
        after its last character, not at column 1 of the line after the final newline."""
        if not buf[at:].strip(_WS):
            at = len(buf[:at].rstrip(_WS))
        start = buf.rfind("\n", 0, at)
        column = at - start if start >= 0 else cut_column + at + 1
        return f"{lines_before + buf.count(chr(10), 0, at) + 1}:{column}"

    def skip_ws() -> str:
        """Advance past whitespace; the next character, or '' at end of file."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    try:
        if skip_ws() != "[":
            raise UserError(f"{path}:{line()}: expected a JSON array ('[') at the top level")
        pos += 1
        if skip_ws() == "]":
            return
        while True:
            skip_ws()  # raw_decode does not skip leading whitespace
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    value, end = exc, -1
                except RecursionError:  # deeper than any reading of it could go, however much more is read
                    raise UserError(f"{path}:{line()}: array element starting on line {line()} is nested too "
                                    f"deeply to read (allowed: nesting well within Python's recursion limit of "
                                    f"{sys.getrecursionlimit()})") from None
                # A value ending exactly at the buffer's end may be a cut-off number: read on.
                if end != -1 and (end < len(buf) or eof):
                    break
                if end == -1 and eof:
                    raise UserError(f"{path}:{line_column(value.pos)}: array element starting on line {line()} "
                                    f"is not valid JSON ({value.msg})")
                if len(buf) - pos > max_element:
                    raise UserError(f"{path}:{line()}: array element is not valid JSON or is larger than "
                                    f"{max_element} characters")
                more()
            pos = end
            yield value
            sep = skip_ws()
            if sep == "]":
                pos += 1
                if skip_ws() != "":
                    raise UserError(f"{path}:{line()}: unexpected text after the closing ']'")
                return
            if sep != ",":
                found = repr(sep) if sep else "end of file"
                raise UserError(f"{path}:{line()}: expected ',' or ']' between elements, found {found}")
            pos += 1
    finally:
        fh.close()
        if bar is not None:
            bar.close()
