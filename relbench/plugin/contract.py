"""The plugin contract, checked by the runner on every call and by ``relbench.testing``.

A metric declares its per-sample columns and aggregates; every row it returns must have
exactly those columns, and every aggregate must read one of them, or a misspelt key would
show as a missing value ("-") that looks like a result. A generator returns one uint8
(H, W, 3) image of the requested size per request. A violation is one line naming the plugin
and the column or image index (a UserError: exit 2). Rows are checked before their score file
is written, and a run that meets a violation takes back every image and score file the command
wrote (``relbench.engine.execute.execute``): the run directory is left as the command found it, plus
its marker and lock, so no summary, no images and no cache of the broken plugin remain.
"""

from __future__ import annotations

from relbench.errors import ContractError


def check_declaration(metric) -> list[str]:
    """The metric's declared columns, after checking its aggregates and ``consumes`` against them."""
    from relbench.plugin.metric import CONSUMES

    name = f"metric {metric.name!r}"
    columns = list(metric.columns())
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise ContractError(f"{name}: columns() lists {dup[0]!r} twice")
    unknown = sorted(set(metric.consumes) - CONSUMES)
    if unknown:
        raise ContractError(f"{name}: consumes {unknown[0]!r}, which is not one of {', '.join(sorted(CONSUMES))}")
    keys: set[str] = set()
    for agg in metric.aggregates():
        for what, col in (("column", agg.column), ("chance_column", agg.chance_column)):
            if col is not None and col not in columns:
                raise ContractError(f"{name}: aggregate {agg.key!r} reads {what} {col!r}, which columns() does not "
                                    f"declare (declared: {', '.join(columns)})")
        if agg.key in keys:
            raise ContractError(f"{name}: aggregate key {agg.key!r} is declared twice")
        keys.add(agg.key)
    return columns


_VALUE_TYPES = (int, float, str, type(None))


def check_rows(metric, columns: list[str], rows, n_samples: int) -> None:
    """One row per sample, each with exactly the declared columns and JSON-able scalar values."""
    name = f"metric {metric.name!r}"
    if not isinstance(rows, list) or len(rows) != n_samples:
        got = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise ContractError(f"{name}: score() returned {got} for {n_samples} samples (one row per sample)")
    declared = set(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ContractError(f"{name}: row {i} is a {type(row).__name__}, not a dict of columns")
        extra = sorted(set(row) - declared)
        if extra:
            raise ContractError(f"{name}: row {i} has column {extra[0]!r}, which columns() does not declare "
                                f"(declared: {', '.join(columns)})")
        missing = [c for c in columns if c not in row]
        if missing:
            raise ContractError(f"{name}: row {i} lacks declared column {missing[0]!r} (use None for no value)")
        for c in columns:
            v = row[c]
            if isinstance(v, bool) or not isinstance(v, _VALUE_TYPES) or (isinstance(v, float) and v != v):
                what = "NaN" if isinstance(v, float) else type(v).__name__
                raise ContractError(f"{name}: row {i} column {c!r} is {what} (allowed: int, float, str, None)")


def check_images(generator, requests, images) -> None:
    """One uint8 (H, W, 3) array per request, of the size it asked for ((width, height))."""
    import numpy as np

    name = f"generator {generator.name!r}"
    if len(images) != len(requests):
        raise ContractError(f"{name}: generate() returned {len(images)} images for {len(requests)} requests")
    for i, (req, img) in enumerate(zip(requests, images)):
        arr = np.asarray(img)
        w, h = req.size
        if arr.dtype != np.uint8 or arr.shape != (h, w, 3):
            raise ContractError(f"{name}: image {i} is {arr.dtype} {tuple(arr.shape)}; the request asked for "
                                f"uint8 ({h}, {w}, 3) (height, width, RGB)")
