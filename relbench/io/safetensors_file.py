"""A safetensors file read as data that may be damaged: the header is checked against the file
before anything else reads it, and weights must be finite floating-point numbers.

Why not trust the loaders: a header length beyond the file is an opaque library error; NaN
weights draw black images that score like any other; integer weights are cast silently by
``load_state_dict`` into numbers that look like weights. The checks read the file memory-mapped
with numpy (no torch), so they can run before any model loads.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from relbench.errors import UserError

_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
# a float is NaN or inf exactly when these bits are all set (exponent all ones; for E4M3, which
# has no inf, exponent and mantissa all ones), read as an unsigned integer of the same width
_NONFINITE_BITS = {"F64": ("<u8", 0x7FF0000000000000), "F32": ("<u4", 0x7F800000), "F16": ("<u2", 0x7C00),
                   "BF16": ("<u2", 0x7F80), "F8_E5M2": ("u1", 0x7C), "F8_E4M3": ("u1", 0x7F)}
FLOAT_DTYPES = tuple(_NONFINITE_BITS)


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


def read_header(path: str | Path, who: str) -> dict[str, TensorEntry]:
    """The tensors a safetensors header lists, each checked to lie inside the file with the
    size its dtype and shape imply; any problem is one UserError naming the file."""
    path = Path(path)
    where = f"{who}: {path}"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise UserError(f"{where}: not a safetensors file ({size} bytes, less than the 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise UserError(f"{where}: safetensors header length {n} is beyond the file size ({size} bytes); the "
                            f"file is truncated or not safetensors")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{where}: the safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise UserError(f"{where}: the safetensors header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    base, entries = 8 + n, {}
    for name, e in header.items():
        try:
            dtype, shape, (start, end) = e["dtype"], tuple(e["shape"]), e["data_offsets"]
            ok = all(isinstance(x, int) and x >= 0 for x in (*shape, start, end))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{where}: tensor {name}: the header entry is not dtype, shape and data_offsets")
        if dtype not in _ITEMSIZE:
            raise UserError(f"{where}: tensor {name}: unknown dtype {dtype!r}")
        if not start <= end <= size - base or end - start != math.prod(shape) * _ITEMSIZE[dtype]:
            raise UserError(f"{where}: tensor {name}: bytes {start}..{end} do not hold a {dtype} tensor of shape "
                            f"{list(shape)} inside the file's {size - base} data bytes; the file is truncated or damaged")
        entries[name] = TensorEntry(dtype, shape, base + start, base + end)
    return entries


def is_index_buffer(name: str, allowed: tuple[str, ...]) -> bool:
    """An integer buffer (positions, a batch counter) that a loader never casts into a weight."""
    return name.rsplit(".", 1)[-1] in allowed


def not_floating(who: str, path: Path, name: str, dtype: str) -> UserError:
    return UserError(f"{who}: {path}: tensor {name} is {dtype}; weights must be floating point "
                     f"({', '.join(FLOAT_DTYPES)})")


def check_weights(path: str | Path, who: str, index_buffers: tuple[str, ...] = (),
                  chunk: int = 1 << 22) -> dict[str, TensorEntry]:
    """``read_header``, then every tensor floating point and finite, except integer tensors
    whose last name part is in ``index_buffers``; returns the entries."""
    import numpy as np

    path = Path(path)
    entries = read_header(path, who)
    for name, e in entries.items():
        if e.dtype not in _NONFINITE_BITS and not (e.dtype[0] in "IU" and is_index_buffer(name, index_buffers)):
            raise not_floating(who, path, name, e.dtype)
    floats = {k: e for k, e in entries.items() if e.dtype in _NONFINITE_BITS and e.end > e.start}
    if not floats:
        return entries
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        for name, e in floats.items():
            code, bits = _NONFINITE_BITS[e.dtype]
            values = data[e.start:e.end].view(code)
            for i in range(0, values.size, chunk):
                bad = np.flatnonzero((values[i:i + chunk] & bits) == bits)
                if bad.size:
                    raise UserError(f"{who}: {path}: tensor {name} holds NaN or inf (first at flat index "
                                    f"{i + int(bad[0])}); the weights are damaged (a diverged training?)")
    finally:
        del data
    return entries
