"""Aggregates with 95% bootstrap intervals that resample triples, not rows.

Seeds of one triple share the triple's difficulty, so rows are not independent; resampling
whole clusters (triples) keeps the interval honest (at n=480 = 160 x 3 it is wider than a
row-level bootstrap would claim). The bootstrap seed is fixed: same rows, same interval.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def _statistic_fn(statistic: str | Callable) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """f(x (N,), w (B, N)) -> (B,) weighted statistic; w are bootstrap multiplicities."""
    if statistic == "mean":
        return lambda x, w: (w @ x) / w.sum(axis=1)
    if statistic == "std":
        def std(x, w):
            tot = w.sum(axis=1)
            m = (w @ x) / tot
            var = (w @ (x * x)) / tot - m * m
            return np.sqrt(np.clip(var, 0.0, None))
        return std
    if callable(statistic):
        return statistic  # vectorised: f(x (N,), w (B, N)) -> (B,)
    raise ValueError(f"unknown statistic {statistic!r} (allowed: mean, std, or a callable)")


def point_estimate(values: Sequence[float], statistic: str | Callable = "mean") -> float:
    x = np.asarray(values, dtype=np.float64)
    return float(_statistic_fn(statistic)(x, np.ones((1, len(x))))[0])


def cluster_bootstrap(
    values: Sequence[float | None],
    clusters: Sequence[str],
    statistic: str | Callable = "mean",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """{"value", "ci_low", "ci_high", "n"} over the non-missing values."""
    return cluster_bootstrap_many([(values, statistic)], clusters, n_resamples, seed, confidence)[0]


def cluster_bootstrap_many(
    columns: list[tuple[Sequence[float | None], str | Callable]],
    clusters: Sequence[str],
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[dict]:
    """Several statistics over the same rows, under one set of resampled triples.

    Percentile interval of scipy.stats.bootstrap over cluster indices; each resample becomes
    row weights (how often its triple was drawn), and every statistic is a weighted one, so a
    column with missing values simply leaves those rows out. One bootstrap call for all
    columns keeps the cost of per-predicate breakdowns low.
    """
    from scipy import stats

    cl = np.asarray([str(c) for c in clusters])
    n = len(cl)
    out: list[dict] = []
    live = []
    for values, statistic in columns:
        x = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        if len(x) != n:
            raise ValueError("values and clusters differ in length")
        mask = ~np.isnan(x)
        fn = _statistic_fn(statistic)
        if not mask.any():
            out.append({"value": None, "ci_low": None, "ci_high": None, "n": 0})
            continue
        value = float(np.asarray(fn(x[mask], np.ones((1, int(mask.sum()))))).reshape(-1)[0])
        out.append({"value": _clean(value), "ci_low": _clean(value), "ci_high": _clean(value), "n": int(mask.sum())})
        live.append((len(out) - 1, x[mask], mask, fn))
    uniq, inverse = np.unique(cl, return_inverse=True)
    k = len(uniq)
    if k < 2 or not live:
        return out

    def stat(idx, axis=-1):
        idx = np.atleast_2d(idx)
        b = idx.shape[0]
        # how often each triple was drawn in each resample, then broadcast to its rows
        counts = np.bincount((idx + np.arange(b)[:, None] * k).ravel(), minlength=b * k).reshape(b, k)
        w = counts[:, inverse].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([np.asarray(fn(x, w[:, m]), dtype=np.float64).reshape(-1) for _, x, m, fn in live])

    res = stats.bootstrap(
        (np.arange(k),), stat, n_resamples=n_resamples, vectorized=True, batch=500,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    lo, hi = (np.atleast_1d(v) for v in res.confidence_interval)
    for (j, x, _, _), l, h in zip(live, lo, hi):
        if np.all(x == x[0]):  # constant: no spread to resample
            continue
        out[j]["ci_low"], out[j]["ci_high"] = _clean(l), _clean(h)
    return out


def _clean(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 10)
