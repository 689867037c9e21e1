"""Compare runs with each other (paired, per case) and with pinned baseline records (unpaired).

Three tests, each chosen for what the data allows:

* **paired** (two runs scored on the same cases, joined on ``case_id``): the difference
  ``stat(B) - stat(A)`` of an aggregate, a 95% percentile bootstrap interval that resamples
  triples (both runs resampled together, so the pairing is kept), and a two-sided p-value from
  a permutation test that swaps the two runs' values within whole triples. For a mean this is
  the sign-flip test of per-triple summed differences (``scipy.stats.permutation_test``);
  for a std the swaps are drawn directly. Fixed seeds throughout. Only the judges' headline
  keys are paired by default (bookkeeping counts are not something to be better at).
* **against a record** (published aggregates, no per-sample data): a z test,
  ``z = (run - record) / sqrt(se_run^2 + se_record^2)``, with se_run from the run's cluster
  bootstrap interval (``(ci_high - ci_low) / 3.92``). se_record is the record's published
  ``se`` where it has one; otherwise it is estimated from the run's own SE scaled to the
  record's n (``se_run * sqrt(n_run / n_record)``): the record's cases are assumed to vary as
  the run's do. That holds the gate's false-positive rate at its nominal 5% when run and
  record come from the same generator (tests/test_compare.py simulates it), where the iid
  formulas do not: a binomial SE ignores that the seeds of a triple are correlated, and for
  clip_alignment_acc, that the two votes of a case are anti-correlated. One-sided in the
  metric's better direction; two-sided for metrics without one.
* **against chance**: ``scipy.stats.binomtest`` on ``round(value * n)`` successes out of n,
  a *convention*: it treats the n cases as independent, which seeds of one triple are not; the
  run's bootstrap interval over triples is the check to trust."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from relbench.errors import UserError
from relbench.results.confusion import stored_specs
from relbench.results.read import Run, RunDir, collect_runs, headline_keys
from relbench.stats.paired import PAIRED_STATISTICS, paired_difference
from relbench.stats.records import CHANCE_TEST, Z95, chance_test, versus_record


def _joined(a: Run, b: Run, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x_a, x_b, triple index) over the cases both runs scored (both values present)."""
    bmap = {r["case_id"]: r for r in b.rows}
    xa, xb, cl = [], [], []
    for r in a.rows:
        o = bmap.get(r["case_id"])
        if o is None:
            continue
        va, vb = r.get(column), o.get(column)
        if isinstance(va, float) and isinstance(vb, float) and not (math.isnan(va) or math.isnan(vb)):
            xa.append(va)
            xb.append(vb)
            cl.append(r["item_id"])
    _, inverse = np.unique(np.asarray(cl, dtype=str), return_inverse=True)
    return np.asarray(xa, dtype=float), np.asarray(xb, dtype=float), inverse.astype(int)


def compare_paired(a: Run, b: Run, key: str, n_resamples: int = 2000, seed: int = 0) -> dict | None:
    """Run b minus run a for aggregate ``key`` on their shared cases; None if not computable
    (no spec in summary.json, a statistic other than mean/std, a number over images or prompts
    rather than cases, or no shared values)."""
    spec = a.specs.get(key) or b.specs.get(key)
    if spec is None or spec.statistic not in PAIRED_STATISTICS or spec.unit != "case":
        return None
    xa, xb, cl = _joined(a, b, spec.column)
    if len(xa) == 0:
        return None
    out = paired_difference(xa, xb, cl, spec.statistic, n_resamples=n_resamples, seed=seed)
    out.update(key=key, run=b.label, against=a.label, higher_is_better=spec.higher_is_better)
    return out


def compare_confusions(a: Run, b: Run, specs: dict[str, dict], n_resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Run b minus run a, cell by cell, for every judge whose confusion both runs report over the
    same candidate predicates (relbench.results.confusion.paired_confusion). specs: judge -> the
    confusion spec summary.json's metrics store."""
    from relbench.results.confusion import paired_confusion

    out = []
    for judge, spec in specs.items():
        ma, mb = (a.summary.get("confusion") or {}).get(judge), (b.summary.get("confusion") or {}).get(judge)
        if not ma or not mb or ma["predicates"] != mb["predicates"] or ma["predicates"] != spec["predicates"]:
            continue
        found = paired_confusion(a.rows, b.rows, spec, n_resamples=n_resamples, seed=seed)
        if found["rows"]:
            out.append({"judge": judge, "run": b.label, "against": a.label, **found})
    return out


def pairing_warning(a: Run, b: Run) -> str | None:
    """A line when two runs pair on only some of their cases, or differ in prompt mode."""
    n = shared_cases(a, b)
    total = max(len(a.rows), len(b.rows))
    modes = (a.summary.get("prompt_mode"), b.summary.get("prompt_mode"))
    partial = 0 < n < total
    if not partial and modes[0] == modes[1]:
        return None
    text = f"{b.label} pairs with {a.label} on {n} of {total} cases"
    if partial:
        text += " (the paired tests use only these)"
    if modes[0] != modes[1]:
        text += f"; prompt modes differ ({a.label}: {modes[0]}, {b.label}: {modes[1]})"
    return text


def shared_cases(a: Run, b: Run) -> int:
    ids = {r["case_id"] for r in a.rows}
    return sum(r["case_id"] in ids for r in b.rows)


def _direction(run: Run | None, key: str, record: dict | None) -> bool | None:
    if record and key in record["metrics"] and "higher_is_better" in record["metrics"][key]:
        return record["metrics"][key]["higher_is_better"]
    if run is not None:
        e = run.metrics.get(key)
        if e is not None:
            return e.get("higher_is_better")
    return None


def compare(dirs: list[RunDir], baseline: str | None = None, keys: list[str] | None = None,
            n_resamples: int = 2000) -> dict:
    """Everything ``relbench compare`` prints: each run's metrics, paired differences of the
    headline keys against the first generator run, and differences against the baseline record
    (only one that was asked for)."""
    from relbench import baselines

    record = baselines.load(baseline) if baseline else None
    runs = collect_runs(dirs)
    gens = [r for r in runs if not r.is_reference]
    ref = next((r for r in runs if r.is_reference), None)
    all_keys: list[str] = []
    for r in runs:
        for k in r.metrics:
            if k not in all_keys:
                all_keys.append(k)
    if keys:
        all_keys = [k for k in all_keys if k in keys]
    specs = {k: v for d in dirs for k, v in d.specs.items()}
    confusion_specs = {j: c for d in reversed(dirs) for j, c in stored_specs(d.summary).items()}
    out: dict = {"baseline": None, "runs": [], "paired": [], "versus_baseline": [], "notes": [], "warnings": [],
                 "confusion_paired": []}
    for r in runs:
        mets = {}
        for k in all_keys:
            e = r.metrics.get(k)
            if e is None or e.get("value") is None:
                continue
            e = dict(e)
            if e.get("chance") is not None and 0 <= e["value"] <= 1 and e.get("n"):
                e["p_chance"] = chance_test(e["value"], e["n"], e["chance"])
            mets[k] = e
        out["runs"].append({"label": r.label, "run": r.name, "dir": str(r.path), "is_reference": r.is_reference,
                            "generator": r.summary.get("generator"), "prompt_mode": r.summary.get("prompt_mode"),
                            "n_cases": r.summary.get("n_cases"), "metrics": mets,
                            **({"confusion": r.summary["confusion"]} if r.summary.get("confusion") else {})})
    agreement = {r.label: r.summary["agreement"] for r in runs if r.summary.get("agreement")}
    if agreement:  # where two judges scored the same images (relbench.stats.agreement)
        out["agreement"] = agreement
    if ref is not None:
        out["ceiling"] = {"run": ref.label, "metrics": {k: ref.metrics[k] for k in all_keys if k in ref.metrics}}
    if record is not None:
        rec = {k: dict(v) for k, v in record["metrics"].items()}
        for k, v in rec.items():
            if v.get("kind") == "proportion":
                v["p_chance"] = chance_test(v["value"], v["n"], v.get("chance", 0.5))
        out["baseline"] = {**{k: v for k, v in record.items() if k != "metrics"}, "metrics": rec}
        for r in gens:
            for k in all_keys:
                if k in rec and r.metrics.get(k, {}).get("value") is not None:
                    d = versus_record(r.metrics[k], rec[k], _direction(r, k, record))
                    out["versus_baseline"].append({"run": r.label, "against": record["name"], "key": k, **d})
    if len(gens) > 1:
        first = gens[0]
        paired_keys = keys if keys else headline_keys(specs, all_keys)
        if not specs:
            out["notes"].append("summary.json holds no aggregate specs (written by an older relbench): "
                                "rerun to get paired tests")
        for r in gens[1:]:
            warning = pairing_warning(first, r)
            if warning:
                out["warnings"].append(warning)
            if shared_cases(first, r) == 0:
                out["notes"].append(f"{r.label} shares no case with {first.label}: no paired comparison")
                continue
            out["confusion_paired"] += compare_confusions(first, r, confusion_specs, n_resamples)
            for k in paired_keys:
                if k in first.metrics and k in r.metrics:
                    d = compare_paired(first, r, k, n_resamples=n_resamples)
                    if d is not None:
                        out["paired"].append(d)
                    elif k in specs and specs[k].unit != "case":
                        out["notes"].append(f"{k}: no paired test for a number over {specs[k].unit} "
                                            f"(paired tests pair cases)")
                    elif k in specs:
                        out["notes"].append(f"{k}: no paired test for statistic {specs[k].statistic!r} "
                                            f"(paired tests take {' or '.join(PAIRED_STATISTICS)})")
    return out


def declared_baselines(dirs: list[RunDir]) -> list[str]:
    """Records every directory's benchmark declares itself comparable with (``comparable_with``
    in its config, kept in summary.json), in the first directory's order."""
    sets = [d.summary.get("comparable_with") or [] for d in dirs]
    return [n for n in (sets[0] if sets else []) if all(n in s for s in sets[1:])]


def default_output_prefix(paths: list[str | Path]) -> Path:
    """Where compare writes when not told: beside the run directories (in their common
    parent), named after them, never inside one of them; the working directory when the
    directories share no parent but the filesystem root."""
    import os

    resolved = [Path(p).resolve() for p in paths]
    parent = Path(os.path.commonpath([p.parent for p in resolved]))
    names = "-".join(dict.fromkeys(p.name for p in resolved))
    name = f"compare-{names}" if len(names) <= 80 else "compare"
    if parent == Path(parent.anchor):
        return Path.cwd() / name
    return parent / name


def gate(result: dict, key: str, alpha: float = 0.05) -> list[dict]:
    """One decision per generator run: better than the baseline on ``key`` with one-sided p < alpha
    (an undefined test, without any standard error, is not better)."""
    rows = [v for v in result["versus_baseline"] if v["key"] == key]
    decisions = []
    for v in rows:
        better = v["alternative"] != "two-sided" and v["p_value"] is not None and v["p_value"] < alpha
        decisions.append({"run": v["run"], "key": key, "better": better, "p_value": v["p_value"],
                          "difference": v["value"], "alpha": alpha})
    return decisions


def check_gate_key(result: dict, key: str) -> None:
    base = result.get("baseline")
    if base is None:
        raise UserError("--require-better needs a baseline record: --baseline NAME (or comparable_with in the "
                        "benchmark config)")
    if key not in base["metrics"]:
        raise UserError(f"--require-better: baseline {base['name']} has no {key!r} (it has: {', '.join(base['metrics'])})")
    if base["metrics"][key].get("higher_is_better") is None:
        raise UserError(f"--require-better: {key!r} has no better direction (higher is not better nor worse)")
    gens = [r for r in result["runs"] if not r["is_reference"]]
    if not gens:
        raise UserError("--require-better: no generator run to judge")
    missing = [r["label"] for r in gens if key not in r["metrics"]]
    if missing:
        raise UserError(f"--require-better: run {missing[0]} has no {key!r} (add the metric that reports it)")


def format_comparison(result: dict) -> str:
    from relbench.results.format import interval_text, number, p_text, text_table

    runs = result["runs"]
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r["metrics"] if k not in keys]
    base = result.get("baseline")
    if base:
        keys += [k for k in base["metrics"] if k not in keys]
    header = ["metric", "chance"] + ([f"{base['name']} (n={base.get('n_cases')})"] if base else [])
    header += [f"{r['label']} (n={r['n_cases']})" for r in runs]
    body = []
    for k in keys:
        chances = {round(r["metrics"][k]["chance"], 3) for r in runs if r["metrics"].get(k, {}).get("chance") is not None}
        if not chances and base and base["metrics"].get(k, {}).get("chance") is not None:
            chances = {base["metrics"][k]["chance"]}
        row = [k, "-" if not chances else (f"{chances.pop():.3g}" if len(chances) == 1 else "per run")]
        if base:
            b = base["metrics"].get(k)
            row.append("-" if b is None else number(b["value"]) + (f" ±{number(Z95 * b['se'], 2)}" if b.get("se") else ""))
        row += [interval_text(r["metrics"].get(k), missing="-") for r in runs]
        body.append(row)
    parts = ["Metrics, 95% intervals (bootstrap over triples):", text_table(header, body)]
    if base:
        chance_rows = [[k, number(v["value"]), str(v["n"]), p_text(v["p_chance"])]
                       for k, v in base["metrics"].items() if "p_chance" in v]
        if chance_rows:
            parts += ["", f"{base['name']} against chance ({CHANCE_TEST}, two-sided):",
                      text_table(["metric", "value", "n", "p"], chance_rows)]
        vb = result["versus_baseline"]
        if vb:
            parts += ["", f"Against {base['name']} (z test; record SE: published, else the run's bootstrap SE scaled "
                          "to the record's n; p one-sided toward better, two-sided where no direction):",
                      text_table(["metric", "run", "difference [95% CI]", "p", "test"],
                                 [[v["key"], v["run"], interval_text(v), p_text(v["p_value"]), v["alternative"]]
                                  for v in vb])]
        else:
            parts += ["", f"Against {base['name']}: no metric in common with the runs"]
    if result["paired"]:
        parts += ["", "Paired differences of the headline keys against the first run (same cases; bootstrap CI "
                      "over triples, permutation p, two-sided):",
                  text_table(["metric", "run", "minus", "difference [95% CI]", "n", "p"],
                             [[v["key"], v["run"], v["against"], interval_text(v), str(v["n"]), p_text(v["p_value"])]
                              for v in result["paired"]])]
    if result.get("confusion_paired"):
        parts += ["", f"Confusion matrices, paired differences per cell against the first run (same cases; bootstrap "
                      f"CI over items, permutation p, two-sided; the {CONFUSION_SHOWN} largest |differences|, "
                      f"every cell in the JSON and CSV):",
                  text_table(["judge", "run", "minus", "asked", "seen", "difference [95% CI]", "n", "p"],
                             [[c["judge"], c["run"], c["against"], c["asked"], c["seen"], interval_text(c),
                               str(c["n"]), p_text(c["p_value"])] for c in confusion_cells(result)[:CONFUSION_SHOWN]])]
    if result.get("agreement"):
        from relbench.results.format import format_agreement

        parts += ["", "Judge agreement (share agreeing, Cohen's kappa; 95% bootstrap over triples; by predicate in "
                      "summary.json):",
                  format_agreement({"runs": {k: {"agreement": v} for k, v in result["agreement"].items()}})]
    for note in result["notes"]:
        parts.append(f"note: {note}")
    for warning in result.get("warnings", []):
        parts.append(f"WARNING: {warning}")
    return "\n".join(parts)


#: how many cells of the paired confusion differences the terminal shows
CONFUSION_SHOWN = 12


def confusion_cells(result: dict) -> list[dict]:
    """Every cell of the paired confusion differences as a flat record, largest |difference|
    first (ties: judge, run, asked, seen order as stored)."""
    cells = []
    for c in result.get("confusion_paired", []):
        for asked, row in c["rows"].items():
            for p in c["predicates"]:
                ci = row["ci"][p]
                cells.append({"judge": c["judge"], "run": c["run"], "against": c["against"], "asked": asked,
                              "seen": p, "value": row["diff"][p], "ci_low": ci[0] if ci else None,
                              "ci_high": ci[1] if ci else None, "n": row["n"], "p_value": row["p_value"][p]})
    return sorted(cells, key=lambda c: -abs(c["value"] or 0.0))


CSV_COLUMNS = ["section", "run", "against", "key", "value", "ci_low", "ci_high", "n", "chance", "p_value", "test"]


def flat_rows(result: dict) -> list[dict]:
    from relbench.engine.plan import REFERENCE

    rows = []
    base = result.get("baseline")
    if base:
        for k, v in base["metrics"].items():
            se = v.get("se")
            rows.append({"section": "baseline", "run": base["name"], "key": k, "value": v["value"],
                         "ci_low": None if se is None else v["value"] - Z95 * se,
                         "ci_high": None if se is None else v["value"] + Z95 * se, "n": v.get("n"),
                         "chance": v.get("chance"), "p_value": v.get("p_chance"),
                         "test": CHANCE_TEST if "p_chance" in v else ""})
    for r in result["runs"]:
        for k, e in r["metrics"].items():
            rows.append({"section": REFERENCE if r["is_reference"] else "run", "run": r["label"], "key": k,
                         "value": e["value"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "n": e.get("n"),
                         "chance": e.get("chance"), "p_value": e.get("p_chance"),
                         "test": CHANCE_TEST if "p_chance" in e else ""})
    for v in result["versus_baseline"]:
        rows.append({"section": "versus_baseline", **{c: v.get(c) for c in ("run", "against", "key", "value", "ci_low",
                                                                             "ci_high", "p_value")},
                     "test": f"{v['test']} ({v['alternative']})"})
    for v in result["paired"]:
        rows.append({"section": "paired", **{c: v.get(c) for c in ("run", "against", "key", "value", "ci_low",
                                                                    "ci_high", "n", "p_value", "test")}})
    for c in confusion_cells(result):
        rows.append({"section": "confusion_paired", "key": f"confusion.{c['judge']}:{c['asked']}->{c['seen']}",
                     **{k: c[k] for k in ("run", "against", "value", "ci_low", "ci_high", "n", "p_value")},
                     "test": "sign-flip permutation of per-item differences"})
    return rows


def write_outputs(result: dict, prefix: str | Path) -> tuple[Path, Path]:
    """PREFIX.csv (one flat row per number) and PREFIX.json (the whole result), atomically."""
    from relbench.io.atomic import write_text
    from relbench.results.write import csv_line

    prefix = Path(prefix)
    lines = [csv_line(CSV_COLUMNS)]
    lines += [csv_line(["" if row.get(c) is None else str(row[c]) for c in CSV_COLUMNS]) for row in flat_rows(result)]
    csv_path, json_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".json")
    write_text(csv_path, "".join(lines))
    write_text(json_path, json.dumps(result, indent=2, default=_jsonable) + "\n")
    return csv_path, json_path


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON-able: {type(o).__name__}")
