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
and kappa (relbench.stats.bootstrap.cluster_bootstrap_many). No library kappa is used: scikit-learn and
statsmodels are not dependencies, and the bootstrap needs a weighted, vectorised form anyway;
the formula is tested against hand-computed tables in tests/test_agreement.py.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

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
    from relbench.stats.bootstrap import cluster_bootstrap_many

    if not (len(a) == len(b) == len(clusters)):
        raise ValueError(f"agreement: lengths differ (a {len(a)}, b {len(b)}, clusters {len(clusters)})")
    codes: list[float | None] = []
    for i, (va, vb) in enumerate(zip(a, b)):
        ca, cb = _code(va, "a", i), _code(vb, "b", i)
        codes.append(None if ca is None or cb is None else float(3 * ca + cb))
    with warnings.catch_warnings():
        # resamples where kappa is undefined (p_e = 1) make scipy warn; the interval is then None
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*confidence interval cannot be calculated.*")
        share, kappa = cluster_bootstrap_many(
            [(codes, _share_stat), (codes, _kappa_stat)], [str(c) for c in clusters],
            n_resamples=resamples, seed=seed,
        )
    return Agreement(
        n=share["n"],
        share=share["value"], share_ci=(share["ci_low"], share["ci_high"]),
        kappa=kappa["value"], kappa_ci=(kappa["ci_low"], kappa["ci_high"]),
    )


# -- judges of one run: which verdict columns say "this image shows its own relation" -------------
#: judge -> (column for img_pos, column for img_neg); values 0 / 0.5 / 1 / None
JUDGE_COLUMNS = {
    "vlm": ("vlm_pos_acc", "vlm_neg_acc"),  # VQAScore: the image's own text has the higher P(yes)
    "vlm2": ("vlm2_pos_acc", "vlm2_neg_acc"),  # two-way question, both orders
    "clip": ("clip_pos_acc", "clip_neg_acc"),  # CLIP: own prompt scores higher
    "spatial": ("pos_uncond", "neg_uncond"),  # boxes: both objects found and the rule holds
}
#: (judge a, judge b, predicates): "geometric" = only predicates the boxes can check
JUDGE_PAIRS = (("vlm", "spatial", "geometric"), ("vlm", "clip", "all"), ("vlm2", "spatial", "geometric"),
               ("vlm2", "clip", "all"))


def _spatial_columns(columns: set[str]) -> tuple[str, str] | None:
    if {"pos_uncond", "neg_uncond"} <= columns:
        return "pos_uncond", "neg_uncond"
    prefixed = sorted(c[: -len("pos_uncond")] for c in columns if c.endswith("_pos_uncond"))
    if "relbench_" in prefixed:  # several rule sets: relbench's own rules speak for the boxes
        prefixed.insert(0, "relbench_")
    return (f"{prefixed[0]}pos_uncond", f"{prefixed[0]}neg_uncond") if prefixed else None


def _as_dict(a: Agreement) -> dict:
    return {"n": a.n, "share": a.share, "share_ci": list(a.share_ci), "kappa": a.kappa, "kappa_ci": list(a.kappa_ci)}


def agreement_by_predicate(a: Sequence[float | None], b: Sequence[float | None], clusters: Sequence[str],
                           predicates: Sequence[str], *, resamples: int = 2000, seed: int = 0) -> dict:
    """{"overall": {...}, "by_predicate": {p: {...}}}: ``agreement`` of all items and of each
    predicate's items, as summary.json stores it (judge vs judge, and judge vs humans)."""
    entry = {"overall": _as_dict(agreement(a, b, clusters, resamples=resamples, seed=seed)), "by_predicate": {}}
    for p in sorted(set(predicates)):
        idx = [i for i, q in enumerate(predicates) if q == p]
        entry["by_predicate"][p] = _as_dict(agreement([a[i] for i in idx], [b[i] for i in idx],
                                                      [clusters[i] for i in idx], resamples=resamples, seed=seed))
    return entry


def judge_agreement(rows: list[dict], geometric: Callable[[str], bool], *, resamples: int = 2000,
                    seed: int = 0, spatial: dict[str, tuple[str, str]] | None = None) -> dict:
    """Per judge pair present in one run's rows: agreement overall and by predicate.

    Items are images (img_pos and img_neg of every case); a judge's verdict is 1 when it says the
    image shows its own graph's relation, 0.5 for a tie, None when it cannot tell (not
    checkable, no image). VLM vs spatial uses geometric predicates only; VLM vs CLIP all.
    ``spatial``: the box judges of the run, {key: (img_pos column, img_neg column)} (several where
    spatial metrics with different detectors judged the same images); None finds one from the
    columns. Every box judge is paired with each VLM judge and with every other box judge
    (geometric predicates: detector vs detector).
    Returns {"vlm~clip": {"predicates": "all", "overall": {...}, "by_predicate": {p: {...}}}}.
    """
    if not rows:
        return {}
    columns = set(rows[0])
    cols = {j: c for j, c in JUDGE_COLUMNS.items() if set(c) <= columns}
    if spatial is None:
        found = _spatial_columns(columns)
        spatial = {"spatial": found} if found else {}
    boxes = {k: c for k, c in sorted(spatial.items()) if set(c) <= columns}
    cols.update(boxes)
    pairs = [(ja, jb, scope) for ja, jb, scope in JUDGE_PAIRS if jb != "spatial"]
    pairs += [(ja, k, scope) for ja, jb, scope in JUDGE_PAIRS if jb == "spatial" for k in boxes]
    names = list(boxes)
    pairs += [(a, b, "geometric") for i, a in enumerate(names) for b in names[i + 1 :]]
    out: dict = {}
    for ja, jb, scope in pairs:
        if ja not in cols or jb not in cols:
            continue
        mine = [r for r in rows if scope == "all" or geometric(r["predicate"])]
        if not mine:
            continue
        a = [r[c] for r in mine for c in cols[ja]]
        b = [r[c] for r in mine for c in cols[jb]]
        both = [(r["item_id"], r["predicate"]) for r in mine for _ in (0, 1)]  # img_pos and img_neg
        out[f"{ja}~{jb}"] = {"predicates": scope, **agreement_by_predicate(
            a, b, [t for t, _ in both], [p for _, p in both], resamples=resamples, seed=seed)}
    return out
