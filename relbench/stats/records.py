"""A run against a published record (no per-sample data, so unpaired) and against chance.
"""

from __future__ import annotations

import math




Z95 = 1.959963984540054


#: how the binomial p-value against chance is labelled wherever it is shown
CHANCE_TEST = "binomial vs chance (convention: cases taken as independent)"


def record_se(rec: dict, run_entry: dict | None = None) -> tuple[float | None, str]:
    """(standard error of a record's value, where it comes from).

    The record's published ``se`` if it has one; else the run's cluster-bootstrap SE scaled to
    the record's n, ``se_run * sqrt(n_run / n_record)`` (the record's cases are assumed to vary
    as the run's do); else unknown (None). The iid formulas (binomial, std/sqrt(n)) are not
    used: seeds of a triple are correlated, and clip_alignment_acc's two votes per case are
    anti-correlated, so they miss the real spread in either direction.
    """
    if rec.get("se") is not None:
        return float(rec["se"]), "published"
    if run_entry is not None and run_entry.get("n") and rec.get("n"):
        se = run_se(run_entry)
        if se is not None:
            return se * math.sqrt(run_entry["n"] / rec["n"]), "run's bootstrap SE scaled to the record's n"
    return None, "unknown"


def run_se(entry: dict) -> float | None:
    """Standard error read off a run's 95% bootstrap interval (None where it is undefined)."""
    if entry.get("ci_low") is None or entry.get("ci_high") is None:
        return None
    return (entry["ci_high"] - entry["ci_low"]) / (2 * Z95)


def versus_record(run_entry: dict, rec_entry: dict, higher_is_better: bool | None) -> dict:
    """Run minus record: difference, normal 95% interval, z and p (one-sided toward better).

    Without a standard error on either side the test is undefined: p, z and the interval are
    None (never a certain difference made up from a missing SE)."""
    from scipy.stats import norm

    diff = run_entry["value"] - rec_entry["value"]
    se_rec, basis = record_se(rec_entry, run_entry)
    se_run = run_se(run_entry)
    alt = {True: "greater", False: "less"}.get(higher_is_better, "two-sided")
    out = {"value": diff, "ci_low": None, "ci_high": None, "z": None, "p_value": None, "alternative": alt,
           "run_value": run_entry["value"], "baseline_value": rec_entry["value"], "se": None, "record_se": se_rec,
           "record_se_basis": basis, "test": "z test: run bootstrap SE and record SE"}
    if se_run is None or se_rec is None:
        return out
    se = math.hypot(se_run, se_rec)
    out.update(se=se, ci_low=diff - Z95 * se, ci_high=diff + Z95 * se)
    if se > 0:
        z = diff / se
        p = {"greater": norm.sf(z), "less": norm.cdf(z)}.get(alt, 2 * norm.sf(abs(z)))
        out.update(z=float(z), p_value=float(p))
    else:  # both values exact (no spread at all): the difference is certain
        better = diff > 0 if alt == "greater" else diff < 0 if alt == "less" else diff != 0
        out["p_value"] = 0.0 if better else 1.0
    return out


def chance_test(value: float, n: int, chance: float = 0.5) -> float:
    """Two-sided binomial p that an accuracy ``value`` over ``n`` trials differs from chance.

    A convention (as published benchmarks report it): it takes the n cases as independent."""
    from scipy.stats import binomtest

    k = int(round(value * n))
    return float(binomtest(k, n, chance).pvalue)
