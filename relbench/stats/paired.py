"""Paired differences of two runs on the same cases: a cluster-bootstrap interval that resamples
items (both runs together, so the pairing is kept) and a permutation p-value that swaps the
two runs' values within whole items.
"""

from __future__ import annotations

import functools

import numpy as np



def paired_difference(
    xa, xb, clusters, statistic="mean", n_resamples: int = 2000, n_permutations: int = 9999, seed: int = 0,
) -> dict:
    """stat(xb) - stat(xa) on paired rows: value, 95% cluster-bootstrap interval, two-sided p.

    ``clusters`` gives each row's triple (any hashable); seeds of a triple move together.
    """
    from relbench.stats.bootstrap import MIN_TRIPLES, _statistic_fn, cluster_bootstrap_many

    xa, xb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    n = len(xa)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0, "n_triples": 0, "p_value": None}
    _, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    k = int(inverse.max()) + 1
    fn = _statistic_fn(statistic)
    ones = np.ones((1, n))
    value = float(fn(xb, ones)[0] - fn(xa, ones)[0])
    # the interval follows stats.MIN_TRIPLES; the permutation p is exact at any k (it cannot
    # fall below 2 / 2**k, so few triples simply cannot show a difference)
    few = k < MIN_TRIPLES
    out = {"value": value, "ci_low": None if few else value, "ci_high": None if few else value, "n": n,
           "n_triples": k, "p_value": 1.0}
    if np.array_equal(xa, xb) or k < 2:
        return out
    if statistic == "mean":  # paired rows share weights: the difference of means is the mean difference
        column = (xb - xa, "mean")
    else:  # a statistic of each side under the same resampled triples
        def diff(rows, w):
            rows = rows.astype(int)
            return fn(xb[rows], w) - fn(xa[rows], w)

        column = (np.arange(n, dtype=float), diff)
    entry = cluster_bootstrap_many([column], clusters, n_resamples=n_resamples, seed=seed)[0]
    out["ci_low"], out["ci_high"] = entry["ci_low"], entry["ci_high"]
    if statistic == "mean":
        out["p_value"] = _sign_flip_p(xb - xa, inverse, k, value, n_permutations, seed)
        out["test"] = SIGN_FLIP
        return out
    swaps = _swaps(k, n_permutations, seed)
    null = np.empty(len(swaps))
    for i, s in enumerate(swaps):
        row_swap = s[inverse]
        null[i] = fn(np.where(row_swap, xa, xb), ones)[0] - fn(np.where(row_swap, xb, xa), ones)[0]
    out["test"] = "within-triple label-swap permutation"
    out["p_value"] = permutation_p(null, value, 2**k <= n_permutations)
    return out


SIGN_FLIP = "sign-flip permutation of per-triple differences"


def _sign_flip_p(diff: np.ndarray, inverse: np.ndarray, k: int, observed: float, n_permutations: int,
                 seed: int) -> float:
    """Swapping a triple's two labels flips the sign of its summed difference: the sign-flip
    test of scipy.stats.permutation_test(permutation_type="samples") on one sample, in numpy
    (scipy's permutation generator costs ~0.1 s per call; reports run dozens)."""
    sums = np.bincount(inverse, weights=diff, minlength=k)
    null = (sums.sum() - 2.0 * (_swaps(k, n_permutations, seed) @ sums)) / len(diff)
    return permutation_p(null, observed, 2**k <= n_permutations)


def paired_mean_differences(xa_cols, xb_cols, clusters, n_resamples: int = 2000, n_permutations: int = 9999,
                            seed: int = 0) -> list[dict]:
    """paired_difference of means for several column pairs over the same paired rows (a
    confusion matrix's cells): one shared bootstrap of the items, a sign-flip p per pair."""
    from relbench.stats.bootstrap import MIN_TRIPLES, cluster_bootstrap_many

    diffs = [np.asarray(b, dtype=float) - np.asarray(a, dtype=float) for a, b in zip(xa_cols, xb_cols)]
    _, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    k = int(inverse.max()) + 1 if len(inverse) else 0
    boot = cluster_bootstrap_many([(d, "mean") for d in diffs], clusters, n_resamples=n_resamples, seed=seed)
    out = []
    for d, b in zip(diffs, boot):
        value = float(d.mean()) if len(d) else None
        few = k < MIN_TRIPLES
        entry = {"value": value, "ci_low": None if few else b["ci_low"], "ci_high": None if few else b["ci_high"],
                 "n": len(d), "n_triples": k, "p_value": None if value is None else 1.0, "test": SIGN_FLIP}
        if value is not None and k >= 2 and np.any(d != 0):
            entry["p_value"] = _sign_flip_p(d, inverse, k, value, n_permutations, seed)
        out.append(entry)
    return out


@functools.lru_cache(maxsize=8)
def _swaps(k: int, n_permutations: int, seed: int) -> np.ndarray:
    """Which triples swap labels, one row per permutation: all 2^k assignments when that is
    at most n_permutations (exact, as scipy.stats.permutation_test does), else a fixed-seed
    random draw. Cached: a report tests many keys on the same triples."""
    if 2**k <= n_permutations:
        swaps = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool)
    else:
        swaps = np.random.default_rng(seed).random((n_permutations, k)) < 0.5
    swaps.setflags(write=False)
    return swaps


def permutation_p(null: np.ndarray, observed: float, exact: bool) -> float:
    """Two-sided p: share of the null at least as extreme as observed (|d| >= |observed|, with a
    relative tolerance for float noise); a random null counts the observed assignment too."""
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(null) >= abs(observed) - tol))
    return float(extreme / len(null)) if exact else float((extreme + 1) / (len(null) + 1))


PAIRED_STATISTICS = ("mean", "std")
