"""Aggregates with 95% bootstrap intervals that resample triples, not rows.

Seeds of one triple share the triple's difficulty, so rows are not independent; resampling
whole clusters (triples) keeps the interval honest (at n=480 = 160 x 3 it is wider than a
row-level bootstrap would claim). The bootstrap seed is fixed: same rows, same interval.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

#: Fewer triples than this: an interval is undefined (None). Why 10: a percentile bootstrap
#: over k clusters is narrower than the t interval of the cluster means by
#: sqrt((k-1)/k) * 1.96 / t(0.975, k-1): 0.53 at k = 4 (a "95%" interval covering 81% of
#: normal cluster means), 0.63 at k = 5 (85%), 0.82 at k = 10 (90%), 0.91 at k = 20 (93%). And
#: with 4 triples whose rates happen to be equal it is a point (both objects found: 0.917
#: [0.917, 0.917] in the smoke lab).
MIN_TRIPLES = 10


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
    """Several statistics over the same rows: {"value", "ci_low", "ci_high", "n", "n_triples"} each.

    Percentile interval of scipy.stats.bootstrap over cluster indices; each resample becomes
    row weights (how often its triple was drawn), and every statistic is a weighted one.
    A column is resampled over the triples where it has values: a sparse column (an accuracy
    given detection when detection is rare, a small breakdown) is never drawn empty. Columns
    with values on the same triples share one bootstrap call, which keeps the cost of
    per-predicate breakdowns low. Fewer than MIN_TRIPLES such triples: the interval is undefined
    (None), even for a constant column.
    """
    cl = np.asarray([str(c) for c in clusters])
    n = len(cl)
    uniq, inverse = np.unique(cl, return_inverse=True)
    out: list[dict] = []
    groups: dict[bytes, list] = {}  # triples with values -> the columns that have them
    for values, statistic in columns:
        x = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        if len(x) != n:
            raise ValueError("values and clusters differ in length")
        mask = ~np.isnan(x)
        fn = _statistic_fn(statistic)
        if not mask.any():
            out.append({"value": None, "ci_low": None, "ci_high": None, "n": 0, "n_triples": 0})
            continue
        value = _clean(np.asarray(fn(x[mask], np.ones((1, int(mask.sum()))))).reshape(-1)[0])
        present = np.zeros(len(uniq), dtype=bool)
        present[inverse[mask]] = True
        k = int(present.sum())
        const = bool(np.all(x[mask] == x[mask][0]))  # no spread to resample
        defined = k >= MIN_TRIPLES
        out.append({"value": value, "ci_low": value if defined else None, "ci_high": value if defined else None,
                    "n": int(mask.sum()), "n_triples": k})
        if defined and not const:
            groups.setdefault(present.tobytes(), []).append((len(out) - 1, x[mask], inverse[mask], fn))
    for key, live in groups.items():
        present = np.frombuffer(key, dtype=bool)
        lo, hi = _bootstrap_group(live, present, n_resamples, seed, confidence)
        for (j, _, _, _), l, h in zip(live, lo, hi):
            out[j]["ci_low"], out[j]["ci_high"] = _clean(l), _clean(h)
    return out


def _bootstrap_group(live: list, present: np.ndarray, n_resamples: int, seed: int, confidence: float):
    """Percentile intervals for columns that have values on the same triples (``present``)."""
    import warnings

    from scipy import stats

    k = int(present.sum())
    local = np.cumsum(present) - 1  # triple index -> index among the present triples

    def stat(idx, axis=-1):
        idx = np.atleast_2d(idx)
        b = idx.shape[0]
        # how often each triple was drawn in each resample, then broadcast to its rows
        counts = np.bincount((idx + np.arange(b)[:, None] * k).ravel(), minlength=b * k).reshape(b, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([np.asarray(fn(x, counts[:, local[tri]].astype(np.float64)), dtype=np.float64).reshape(-1)
                             for _, x, tri, fn in live])

    with warnings.catch_warnings():
        # a statistic that is constant or undefined in every resample is reported as such
        # (NaN -> None) by the caller; scipy's warning about it says nothing more
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(
            (np.arange(k),), stat, n_resamples=n_resamples, vectorized=True, batch=500,
            confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
        )
    return (np.atleast_1d(v) for v in res.confidence_interval)


def _clean(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 10)


def triple_chance_test(values: Sequence[float | None], chances: Sequence[float | None],
                       clusters: Sequence[str]) -> dict | None:
    """Whether an accuracy differs from chance, with triples (not cases) as the trials.

    ``scipy.stats.binomtest`` (two-sided) of round(sum of the per-triple mean accuracies)
    successes in k triples against the mean of the per-triple mean chances: as if the seeds of a
    triple always agreed, the most they can be correlated, so the test never claims more than the
    triples hold (a binomial over cases takes seeds as independent, which they are not; a t test
    over triple means claims certainty when every triple scores 0 at a low chance, as random
    placement does on a 0.06-chance pair accuracy). None with fewer than MIN_TRIPLES triples,
    as for the interval.
    """
    from scipy.stats import binomtest

    per: dict[str, list[tuple[float, float]]] = {}
    for v, c, t in zip(values, chances, clusters):
        if v is None or c is None or (isinstance(v, float) and math.isnan(v)):
            continue
        per.setdefault(str(t), []).append((float(v), float(c)))
    if len(per) < MIN_TRIPLES:
        return None
    acc = [sum(v for v, _ in vc) / len(vc) for vc in per.values()]
    chance = sum(sum(c for _, c in vc) / len(vc) for vc in per.values()) / len(per)
    k = len(acc)
    hits = min(k, max(0, int(round(sum(acc)))))
    p = float(binomtest(hits, k, min(max(chance, 0.0), 1.0)).pvalue)
    return {"p_value": p, "successes": hits, "n_triples": k, "chance": chance, "above": sum(acc) / k > chance}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, aligned with the input (None stays None and is not
    counted in the family). Holm controls the chance of any false "above/below chance" among
    the family at alpha, without assuming the tests independent; scipy has only
    Benjamini-Hochberg (``false_discovery_control``), which controls a rate, not that chance."""
    live = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(live)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(live):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
