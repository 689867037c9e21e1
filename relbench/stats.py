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
        return lambda x, w: np.array([statistic(x, row) for row in w])
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
    """{"value", "ci_low", "ci_high", "n"} over the non-missing values.

    Percentile interval of scipy.stats.bootstrap over cluster indices; a statistic of the
    resampled clusters is computed from row weights, so any weighted statistic works.
    """
    from scipy import stats

    x_all = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    keep = ~np.isnan(x_all)
    x = x_all[keep]
    cl = np.asarray(clusters, dtype=object)[keep]
    n = int(len(x))
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    fn = _statistic_fn(statistic)
    value = float(fn(x, np.ones((1, n)))[0])
    uniq, inverse = np.unique(cl.astype(str), return_inverse=True)
    k = len(uniq)
    if k < 2 or np.all(x == x[0]):
        return {"value": _clean(value), "ci_low": _clean(value), "ci_high": _clean(value), "n": n}
    onehot = np.zeros((k, n))
    onehot[inverse, np.arange(n)] = 1.0

    def stat(idx, axis=-1):
        idx = np.atleast_2d(idx)
        counts = np.zeros((idx.shape[0], k))
        np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
        return fn(x, counts @ onehot)

    res = stats.bootstrap(
        (np.arange(k),), stat, n_resamples=n_resamples, vectorized=True, batch=500,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"value": _clean(value), "ci_low": _clean(lo), "ci_high": _clean(hi), "n": n}


def _clean(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 10)
