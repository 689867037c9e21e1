"""Agreement between two judges on the same cases: share agreeing and Cohen's kappa.

Used wherever two judges (VLM vs spatial boxes, VLM vs CLIP, a human vs a judge) gave a verdict
on the same (case, image) items, so a reader sees where judges disagree instead of trusting one.

Judgements are 0 (wrong), 1 (right) or 0.5 (an exact tie / "can't tell"); None means the judge
gave no verdict (missing detection, not checkable) and the pair is skipped. A tie is *not*
split into half an agreement: it is a third nominal category, "undecided", so two ties agree,
and a tie against a decided verdict disagrees. Kappa is Cohen's (1960) unweighted kappa over
those categories, kappa = (p_o - p_e) / (1 - p_e), with p_o the observed share agreeing and p_e
the agreement expected from the two judges' marginal rates. It is undefined (None) when
p_e = 1 (both judges give one and the same category to every item); a judge that is constant
while the other is not gives kappa 0.

Intervals are 95% percentile intervals of a cluster bootstrap over ``clusters`` (triple ids:
the seeds and images of one triple share its difficulty), under one set of resamples for share
and kappa (relbench.stats.cluster_bootstrap_many). No library kappa is used: scikit-learn and
statsmodels are not dependencies, and the bootstrap needs a weighted, vectorised form anyway;
the formula is tested against hand-computed tables in tests/test_agreement.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: the verdict categories, in code order
CATEGORIES = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Agreement:
    n: int
    share: float | None
    share_ci: tuple[float | None, float | None]
    kappa: float | None
    kappa_ci: tuple[float | None, float | None]


def _code(v: float | None, which: str, i: int) -> int | None:
    if v is None:
        return None
    f = float(v)
    if f != f:  # NaN: no verdict, like None
        return None
    for k, c in enumerate(CATEGORIES):
        if f == c:
            return k
    raise ValueError(f"agreement: judgement {which}[{i}] = {v!r}; allowed: 0, 0.5 (tie), 1 or None")


def _kappa_stat(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Cohen's kappa; x holds pair codes 3*a+b, w (B, N) bootstrap multiplicities."""
    onehot = np.eye(9)[x.astype(int)]  # (N, 9)
    cells = (w @ onehot).reshape(-1, 3, 3)  # (B, a, b)
    tot = cells.sum(axis=(1, 2))
    po = np.trace(cells, axis1=1, axis2=2) / tot
    pa = cells.sum(axis=2) / tot[:, None]
    pb = cells.sum(axis=1) / tot[:, None]
    pe = (pa * pb).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = (po - pe) / (1.0 - pe)
    return np.where(np.isclose(pe, 1.0), np.nan, k)


def _share_stat(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    agree = (x.astype(int) // 3 == x.astype(int) % 3).astype(np.float64)
    return (w @ agree) / w.sum(axis=1)


def agreement(
    a: Sequence[float | None],
    b: Sequence[float | None],
    clusters: Sequence[str],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> Agreement:
    """Share agreeing and Cohen's kappa of judges a and b, with cluster-bootstrap 95% intervals.

    Items where either judgement is None (or NaN) are skipped; n counts the rest. With n = 0
    every figure is None.
    """
    from relbench.stats import cluster_bootstrap_many

    if not (len(a) == len(b) == len(clusters)):
        raise ValueError(f"agreement: lengths differ (a {len(a)}, b {len(b)}, clusters {len(clusters)})")
    codes: list[float | None] = []
    for i, (va, vb) in enumerate(zip(a, b)):
        ca, cb = _code(va, "a", i), _code(vb, "b", i)
        codes.append(None if ca is None or cb is None else float(3 * ca + cb))
    share, kappa = cluster_bootstrap_many(
        [(codes, _share_stat), (codes, _kappa_stat)], [str(c) for c in clusters],
        n_resamples=resamples, seed=seed,
    )
    return Agreement(
        n=share["n"],
        share=share["value"], share_ci=(share["ci_low"], share["ci_high"]),
        kappa=kappa["value"], kappa_ci=(kappa["ci_low"], kappa["ci_high"]),
    )
