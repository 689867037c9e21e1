"""Predicate confusion matrices: for each asked predicate, which predicates a judge sees in img_pos.

A row is over the images of img_pos asked with that predicate that the judge could judge; each
cell is the mean over those images of the judge's "seen" value for a candidate predicate (boxes:
1 when the predicate's rule holds, several may, so a row can sum over 1; a multiple-choice VLM:
the option's probability averaged over orders, a row sums to 1). Intervals resample items
(relbench.stats.bootstrap), as every other number; chance rows are the reference run's rows. Two
runs' matrices on the same cases differ cell by cell with the paired test of relbench.stats.paired.

Everything is recomputed from samples.csv (the per-sample ``seen`` columns) and the judge's spec
stored in summary.json, so a reader needs no plugin.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from relbench.errors import UserError

JUDGES = ("spatial", "vlm_judge", "human")


def seen_vector(value, encoding: str, predicates: Sequence[str], where: str = "") -> dict[str, float]:
    """One image's seen value of every candidate, from its per-sample column.

    encoding "set": a ';'-joined list of the predicates that hold (empty: none hold);
    "distribution": a JSON object {predicate: probability}."""
    if encoding == "set":
        held = set() if value in (None, "") else {p for p in str(value).split(";") if p}
        unknown = held - set(predicates)
        if unknown:
            raise UserError(f"{where}: {sorted(unknown)[0]!r} is not a candidate predicate "
                            f"(allowed: {', '.join(predicates)})")
        return {p: float(p in held) for p in predicates}
    if encoding == "distribution":
        try:
            dist = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            dist = None
        if not isinstance(dist, dict):
            raise UserError(f"{where}: {value!r} is not a JSON object {{predicate: probability}}")
        return {p: float(dist.get(p, 0.0)) for p in predicates}
    raise UserError(f"{where}: unknown confusion encoding {encoding!r} (allowed: set, distribution)")


def judged_rows(rows: Sequence[dict], spec: dict) -> list[tuple[dict, dict[str, float]]]:
    """(row, seen vector) for every row the judge could judge (its ``judged`` column present)."""
    out = []
    for r in rows:
        if r.get(spec["judged"]) is None:
            continue
        where = f"samples.csv: run {r.get('run')}, case {r.get('case_id')}, column {spec['column']}"
        out.append((r, seen_vector(r.get(spec["column"]), spec["encoding"], spec["predicates"], where)))
    return out


def _asked_order(asked: set[str], predicates: Sequence[str]) -> list[str]:
    """Rows in the candidates' (vocabulary) order, then any asked predicate that is not a candidate."""
    return [p for p in predicates if p in asked] + sorted(asked - set(predicates))


def confusion_matrix(rows: Sequence[dict], spec: dict, n_resamples: int = 2000, seed: int = 0) -> dict:
    """summary.json's ``confusion.<judge>`` of one run (without ``chance``, see with_chance)."""
    from relbench.stats.bootstrap import cluster_bootstrap_many

    preds = list(spec["predicates"])
    by_asked: dict[str, list[tuple[str, dict]]] = {}
    for r, seen in judged_rows(rows, spec):
        by_asked.setdefault(r["predicate"], []).append((r["item_id"], seen))
    out_rows = {}
    for asked in _asked_order(set(by_asked), preds):
        entries = by_asked[asked]
        found = cluster_bootstrap_many([([v[p] for _, v in entries], "mean") for p in preds],
                                       [i for i, _ in entries], n_resamples=n_resamples, seed=seed)
        out_rows[asked] = {
            "n": len(entries), "n_items": len({i for i, _ in entries}),
            "seen": {p: f["value"] for p, f in zip(preds, found)},
            "ci": {p: None if f["ci_low"] is None else [f["ci_low"], f["ci_high"]] for p, f in zip(preds, found)},
        }
    return {"predicates": preds, "rows": out_rows}


def with_chance(matrix: dict, reference: Optional[dict]) -> dict:
    """Each row's chance: the reference run's row for the same asked predicate and candidates
    (what the judge sees on the suite's own images); absent without one."""
    if not reference or reference.get("predicates") != matrix["predicates"]:
        return matrix
    for asked, row in matrix["rows"].items():
        ref = reference["rows"].get(asked)
        if ref is not None:
            row["chance"] = dict(ref["seen"])
    return matrix


def run_confusions(rows_by_run: dict[str, list[dict]], specs: Sequence[dict], reference: Optional[str],
                   n_resamples: int = 2000, seed: int = 0) -> dict[str, dict]:
    """run -> judge -> matrix for every run, chance rows from the reference run (not on itself)."""
    found = {run: {s["judge"]: confusion_matrix(rows, s, n_resamples, seed) for s in specs}
             for run, rows in rows_by_run.items()}
    ref = found.get(reference) if reference else None
    for run, judges in found.items():
        if ref is not None and run != reference:
            for judge, m in judges.items():
                with_chance(m, ref.get(judge))
    return {run: {j: m for j, m in judges.items() if m["rows"]} for run, judges in found.items()}


def stored_specs(summary: dict) -> dict[str, dict]:
    """judge -> its confusion spec, as summary.json's metrics store them."""
    return {s["judge"]: s for info in (summary.get("metrics") or {}).values() for s in info.get("confusion") or ()}


def paired_confusion(a_rows: Sequence[dict], b_rows: Sequence[dict], spec: dict, n_resamples: int = 2000,
                     seed: int = 0) -> dict:
    """B minus A, cell by cell, over the cases both runs' judge could judge (joined on case_id):
    {"predicates", "rows": {asked: {"n", "n_items", "diff": {p: value}, "ci": {p: [lo, hi] | None},
    "p_value": {p: p}}}}. The interval resamples items with both runs together; p is the
    sign-flip permutation of per-item differences (relbench.stats.paired)."""
    from relbench.stats.paired import paired_mean_differences

    preds = list(spec["predicates"])
    b_seen = {r["case_id"]: v for r, v in judged_rows(b_rows, spec)}
    by_asked: dict[str, list[tuple[str, dict, dict]]] = {}
    for r, va in judged_rows(a_rows, spec):
        vb = b_seen.get(r["case_id"])
        if vb is not None:
            by_asked.setdefault(r["predicate"], []).append((r["item_id"], va, vb))
    out = {}
    for asked in _asked_order(set(by_asked), preds):
        entries = by_asked[asked]
        found = paired_mean_differences([[va[p] for _, va, _ in entries] for p in preds],
                                        [[vb[p] for _, _, vb in entries] for p in preds],
                                        [i for i, _, _ in entries], n_resamples=n_resamples, seed=seed)
        out[asked] = {
            "n": len(entries), "n_items": len({i for i, _, _ in entries}),
            "diff": {p: f["value"] for p, f in zip(preds, found)},
            "ci": {p: None if f["ci_low"] is None else [f["ci_low"], f["ci_high"]] for p, f in zip(preds, found)},
            "p_value": {p: f["p_value"] for p, f in zip(preds, found)},
        }
    return {"predicates": preds, "rows": out}
