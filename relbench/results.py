"""Results on disk: samples.csv (one row per case x run), summary.json and manifest.json.

Everything a report or a comparison needs is in these files; all are written atomically, and
samples.csv and summary.json depend only on the config and seeds (timings live in the manifest).
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from relbench.atomic import read_json_cache, write_text
from relbench.data import stable_hash

if TYPE_CHECKING:
    from relbench.runner import RunResult

BASE_COLUMNS = [
    "run", "case_id", "item_id", "seed", "noise_seed", "negative_kind", "predicate", "neg_predicate", "subject", "object",
    "graph_pos", "graph_neg", "prompt_pos", "prompt_neg", "image_pos", "image_neg",
]
#: samples.csv columns an older relbench wrote under another name: readers rename them, so a run
#: directory written before the rename still loads, compares and reports
RENAMED_COLUMNS = {"triple_id": "item_id"}


def _graph_text(graph) -> str:
    return "; ".join(t.text() for t in graph)


def tested_triple(case):
    """(g+ triple, g- triple) of the relation a case tests: the triple its negative changed.

    A graph may hold several triples; a negative corrupts exactly one (relbench.negatives), so
    the case's predicate, subject and object in samples.csv (and the per-predicate breakdown)
    are that triple's. A case whose graphs do not differ in one position falls back to the
    first triple.
    """
    if len(case.pos) == len(case.neg):
        changed = [i for i, (p, n) in enumerate(zip(case.pos, case.neg)) if p != n]
        if len(changed) == 1:
            return case.pos[changed[0]], case.neg[changed[0]]
    return case.pos[0], case.neg[0]


def sample_rows(plan, collected: RunResult) -> tuple[list[str], list[dict]]:
    metric_cols = [c for info in collected.metrics.values() for c in info.columns]
    rows = []
    for run in collected.runs:
        for case in plan.cases:
            t, t_neg = tested_triple(case)
            row = {
                "run": run.name, "case_id": case.id, "item_id": case.item_id, "seed": case.seed,
                "noise_seed": case.noise_seed,
                "negative_kind": case.negative_kind, "predicate": t.predicate, "neg_predicate": t_neg.predicate,
                "subject": t.subject, "object": t.object,
                "graph_pos": _graph_text(case.pos), "graph_neg": _graph_text(case.neg),
                "prompt_pos": run.prompts[case.id][0], "prompt_neg": run.prompts[case.id][1],
                "image_pos": run.keys[case.id][0] or "", "image_neg": run.keys[case.id][1] or "",
            }
            scores = collected.scores[run.name].get(case.id, {})
            for col in metric_cols:
                row[col] = scores.get(col)
            rows.append(row)
    return BASE_COLUMNS + metric_cols, rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def csv_line(values: list[str]) -> str:
    """One CSV record ending in "\n" whose fields read back exactly as given.

    The csv module quotes a field only for the characters of its own line terminator, so with
    "\n" a bare "\r" (which every reader takes for a line break) would go out unquoted and
    split the row. Written with "\r\n", every field holding either character is quoted; the
    terminator is then swapped for "\n", which keeps the bytes of ordinary rows unchanged.
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()[:-2] + "\n"


def write_samples_csv(path: Path, columns: list[str], rows: list[dict]) -> bool:
    """Write samples.csv; False when it held these rows already."""
    lines = [csv_line(columns)] + [csv_line([_fmt(r.get(c)) for c in columns]) for r in rows]
    return _write_if_changed(path, "".join(lines))


def _write_if_changed(path: Path, text: str) -> bool:
    """Write unless the file holds these bytes already: a finished run rerun writes nothing, so
    it also succeeds in a directory it may only read."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return False
    except OSError:
        pass
    write_text(path, text)
    return True


#: manifest keys (and keys of each run's entry) that describe the process, not the results: a
#: rerun that changed no result keeps the manifest of the run that made them
_PROCESS_KEYS = ("created", "argv", "command", "timings")
_RUN_PROCESS_KEYS = ("images_generated", "images_loaded", "generate_s")


def _entries(rows: list[dict], aggs: list, bench) -> list[dict]:
    """Every aggregate over one set of rows, with intervals from one shared bootstrap."""
    from relbench.stats import cluster_bootstrap_many

    found = cluster_bootstrap_many(
        [([r.get(a.column) for r in rows], a.statistic) for a in aggs], [r["item_id"] for r in rows],
        n_resamples=bench.bootstrap_resamples, seed=bench.bootstrap_seed,
    )
    for entry, agg in zip(found, aggs):
        entry["chance"] = _chance(rows, agg)
    return found


def _chance(rows: list[dict], agg) -> float | None:
    if agg.chance_column:
        vals = [r.get(agg.chance_column) for r in rows if r.get(agg.column) is not None]
        vals = [v for v in vals if v is not None]
        return round(sum(vals) / len(vals), 10) if vals else None
    return agg.chance


def _is_binary(rows: list[dict], agg) -> bool:
    vals = [r.get(agg.column) for r in rows]
    vals = [v for v in vals if v is not None]
    return agg.statistic == "mean" and bool(vals) and all(v in (0.0, 1.0) for v in vals)


def _seed_consistency(rows: list[dict], agg, bench, n_seeds: int) -> dict:
    """VISOR_k style: share of triples with at least k of their seeds judged correct.

    Chance, where the per-case chance c is known, is P(Binomial(n, c) >= k) averaged over triples.
    """
    from math import comb

    per_item: dict[str, list[float]] = {}
    chance_of: dict[str, list[float]] = {}
    for r in rows:
        v = r.get(agg.column)
        if v is not None:
            per_item.setdefault(r["item_id"], []).append(v)
            c = r.get(agg.chance_column) if agg.chance_column else agg.chance
            if c is not None:
                chance_of.setdefault(r["item_id"], []).append(c)
    from relbench.metric import Aggregate

    complete = {t: vs for t, vs in per_item.items() if len(vs) == n_seeds}
    trip = [{"item_id": t, **{f"k{k}": float(sum(vs) >= k) for k in range(1, n_seeds + 1)}}
            for t, vs in complete.items()]
    ks = range(1, n_seeds + 1)
    # every k under one shared bootstrap of the same triples
    entries = _entries(trip, [Aggregate(f"{agg.key}@{k}", f"k{k}") for k in ks], bench)
    cs = [sum(cv) / len(cv) for t, cv in chance_of.items() if t in complete]
    out = {}
    for k, entry in zip(ks, entries):
        entry["chance"] = (
            round(sum(sum(comb(n_seeds, j) * c**j * (1 - c) ** (n_seeds - j) for j in range(k, n_seeds + 1)) for c in cs) / len(cs), 10)
            if cs and len(cs) == len(trip) else None
        )
        out[f"k{k}"] = entry
    return out


def _aggregate_all(plan, collected, rows) -> dict:
    """Per run: every aggregate overall, by predicate, by negative kind, and seed consistency.

    The result is cached by the content of the rows and the aggregate specs, so a rerun of a
    finished run needs no bootstrap (and no scipy import).
    """
    bench = plan.bench
    aggs = [(mname, a) for mname, info in collected.metrics.items() for a in info.aggregates]
    specs = [[m, a.key, a.column, statistic_name(a.statistic), a.higher_is_better, a.chance, a.chance_column]
             for m, a in aggs]
    key = stable_hash({"rows": rows, "specs": specs, "b": [bench.bootstrap_resamples, bench.bootstrap_seed], "v": 3}, n=32)
    cache = plan.out / "cache" / "aggregates" / f"{key}.json"
    cached = read_json_cache(cache)  # None when missing, or torn by a power loss
    if isinstance(cached, dict):
        return cached

    n_seeds = len(bench.seeds)
    result = {}
    for run in collected.runs:
        mine = [r for r in rows if r["run"] == run.name]
        out: dict = {"metrics": {}, "by_predicate": {}, "by_negative_kind": {}, "seed_consistency": {}}
        just_aggs = [a for _, a in aggs]
        for (mname, agg), entry in zip(aggs, _entries(mine, just_aggs, bench)):
            entry["metric"] = mname
            entry["higher_is_better"] = agg.higher_is_better
            out["metrics"][agg.key] = entry
        for field, group in (("predicate", "by_predicate"), ("negative_kind", "by_negative_kind")):
            for value in sorted({r[field] for r in mine}):
                sub = [r for r in mine if r[field] == value]
                out[group][value] = {a.key: e for a, e in zip(just_aggs, _entries(sub, just_aggs, bench))}
        for mname, agg in aggs:
            if n_seeds > 1 and _is_binary(mine, agg):
                out["seed_consistency"][agg.key] = _seed_consistency(mine, agg, bench, n_seeds)
        result[run.name] = out
    write_text(cache, json.dumps(result))
    return result


def statistic_name(statistic) -> str:
    """"mean", "std", or a callable's qualified name (summary.json holds data, not code)."""
    if isinstance(statistic, str):
        return statistic
    return f"{getattr(statistic, '__module__', '')}.{getattr(statistic, '__qualname__', repr(statistic))}"


@dataclass(frozen=True)
class AggregateSpec:
    """What a reader of summary.json needs to know of an aggregate without loading its plugin:
    which column, which statistic, its chance level and better direction, whether it is the
    judge's headline accuracy and which detection rates it depends on."""

    metric: str
    column: str
    statistic: str
    chance: float | None = None
    chance_column: str | None = None
    higher_is_better: bool | None = None
    headline: bool = False
    requires_detected: tuple[str, ...] = ()

    @classmethod
    def of(cls, metric: str, agg) -> "AggregateSpec":
        return cls(metric, agg.column, statistic_name(agg.statistic), agg.chance, agg.chance_column,
                   agg.higher_is_better, bool(agg.headline), tuple(agg.requires_detected))

    @classmethod
    def from_json(cls, d: dict) -> "AggregateSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        return cls(**{**d, "requires_detected": tuple(d.get("requires_detected") or ())})

    def to_json(self) -> dict:
        return {**asdict(self), "requires_detected": list(self.requires_detected)}


def aggregate_spec(metric: str, agg) -> dict:
    """The JSON form of an aggregate's spec, as summary.json stores it."""
    return AggregateSpec.of(metric, agg).to_json()


def _agreement(plan, rows: list[dict]) -> dict:
    """Where two judges scored the same images: how often they agree (relbench.agreement)."""
    from relbench.agreement import judge_agreement

    def geometric(p: str) -> bool:
        return p in plan.vocab and plan.vocab.get(p).geometric

    found = judge_agreement(rows, geometric, resamples=plan.bench.bootstrap_resamples, seed=plan.bench.bootstrap_seed)
    return {"agreement": found} if found else {}


def summarise(plan, collected, columns_rows) -> dict:
    from relbench.runner import REFERENCE

    _, rows = columns_rows
    bench = plan.bench
    aggregated = _aggregate_all(plan, collected, rows)
    out_runs = {}
    for run in collected.runs:
        mine = [r for r in rows if r["run"] == run.name]
        clusters = [r["item_id"] for r in mine]
        out_runs[run.name] = {
            "generator": run.info.get("generator"),
            "prompt_mode": run.info.get("prompt_mode"),
            "fingerprint": run.info.get("fingerprint"),
            "is_reference": run.name == REFERENCE,
            "n_cases": len(mine),
            "n_triples": len(set(clusters)),
            **aggregated[run.name],
            **_agreement(plan, mine),
        }
    return {
        "benchmark": bench.name,
        "suite": bench.suite.kind,
        "n_cases": len(plan.cases),
        "n_triples": len({c.item_id for c in plan.cases}),
        "seeds": list(bench.seeds),
        "confidence": 0.95,
        "interval": f"percentile bootstrap over triples, {bench.bootstrap_resamples} resamples, seed {bench.bootstrap_seed}",
        "comparable_with": list(getattr(bench, "comparable_with", [])),
        "metrics": {
            name: {"flags": info.flags, "aggregates": {a.key: a.description for a in info.aggregates},
                   "specs": {a.key: aggregate_spec(name, a) for a in info.aggregates},
                   **({"provenance": info.provenance} if info.provenance else {})}
            for name, info in collected.metrics.items()
        },
        "runs": out_runs,
        # cases a run of files made elsewhere had no usable image for (allow_missing), left out of every run
        **({"cases_left_out": {run: len(ids) for run, ids in plan.left_out.items()}}
           if getattr(plan, "left_out", None) else {}),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("relbench", "numpy", "scipy", "pillow", "pydantic", "torch", "diffusers", "peft", "transformers",
                "open_clip_torch", "lpips", "accelerate"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _suite_rejected(plan) -> dict:
    rejected = getattr(plan, "suite_rejected", None)
    if not rejected:
        return {}
    from relbench.suites.peers import rejected_summary

    return {"suite_lines_rejected": rejected_summary(rejected)}


def manifest(plan, collected, argv: list[str] | None) -> dict:
    t = collected.timings
    topo = collected.topology
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": argv,
        "config": plan.bench.model_dump(mode="json"),
        "seeds": list(plan.bench.seeds),
        "n_cases": len(plan.cases),
        "items_without_negative": plan.skipped_items,
        **_suite_rejected(plan),
        **({"cases_left_out": plan.left_out} if getattr(plan, "left_out", None) else {}),
        "runs": {r.name: r.info for r in collected.runs},
        "metrics": {k: {"fingerprint": v.fingerprint, "fingerprint_parts": v.fingerprint_parts, "args": v.args,
                        "consumes": v.consumes, "provenance": v.provenance}
                    for k, v in collected.metrics.items()},
        "versions": _versions(),
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "command": sys.argv,
        "world_size": topo.world_size,
        "timings": {
            "wall_s": round(collected.wall_s, 3),
            "generate_s": round(t.generate_s, 3),
            "score_s": round(t.score_s, 3),
            "images_generated": t.images_generated,
            **({"images_loaded": t.images_loaded} if t.images_loaded else {}),
            "images_reused": t.images_reused,
            "per_run": t.per_run,
            # what each metric computed in this process (0 where its scores came from the cache)
            "metric_work": {k: v.counts for k, v in collected.metrics.items() if v.counts},
            # the inputs each metric read in this process, within its declared (enforced) consumes
            "metric_inputs_read": {k: sorted(v) for k, v in sorted(t.inputs_read.items())},
        },
    }


def write_results(plan, collected, argv=None) -> dict:
    columns, rows = sample_rows(plan, collected)
    summary = summarise(plan, collected, (columns, rows))
    changed = write_samples_csv(plan.out / "samples.csv", columns, rows)
    changed |= _write_if_changed(plan.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    new = manifest(plan, collected, argv)
    if changed or _results_part(_read_json(plan.out / "manifest.json")) != _results_part(new):
        write_text(plan.out / "manifest.json", json.dumps(new, indent=2) + "\n")
    return summary


def _results_part(m: dict | None) -> dict | None:
    if m is None:
        return None
    out = {k: v for k, v in m.items() if k not in _PROCESS_KEYS}
    out["runs"] = {name: {k: v for k, v in info.items() if k not in _RUN_PROCESS_KEYS}
                   for name, info in (m.get("runs") or {}).items()}
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_table(summary: dict) -> str:
    """Aggregates as rows, runs as columns: value [ci_low, ci_high], with the chance level."""
    runs = summary["runs"]
    keys: list[str] = []
    for run in runs.values():
        for k in run["metrics"]:
            if k not in keys:
                keys.append(k)

    def cell(e):
        return interval_text(e, 4, missing="-")

    def chance(k):
        vals = {round(r["metrics"][k]["chance"], 3) for r in runs.values()
                if k in r["metrics"] and r["metrics"][k].get("chance") is not None}
        return "-" if not vals else (f"{vals.pop():.3g}" if len(vals) == 1 else "per run")

    header = ["metric", "chance"] + [f"{name} (n={r['n_cases']})" for name, r in runs.items()]
    uncalibrated = _uncalibrated_keys(summary)
    body = [[k, chance(k)] + ["UNCALIBRATED" if k in uncalibrated else cell(r["metrics"].get(k)) for r in runs.values()]
            for k in keys]
    lines = [text_table(header, body)]
    for name, info in summary.get("metrics", {}).items():
        prov = info.get("provenance") or {}
        if prov.get("judge"):
            pen = prov.get("repetition_penalty") or {}
            lines.append(f"judge {name}: {prov['judge']}, {prov.get('dtype')} on {prov.get('device')}, "
                         f"template {prov.get('template')}, repetition_penalty {pen.get('applied')} "
                         f"({pen.get('mode')})")
        lines += [f"WARNING {name}: {flag}" for flag in info.get("flags", [])]
    return "\n".join(lines)


UNDEFINED = "–"  # an interval (or value) that cannot be computed, e.g. from fewer than stats.MIN_TRIPLES triples


def number(v, digits: int = 4, missing: str = UNDEFINED) -> str:
    """One number for terminals, CSV-side tables and reports: ``digits`` significant digits,
    fixed notation up to 10^digits, scientific below 1e-3."""
    if v is None:
        return missing
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2e}"
    if abs(v) >= 10**digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def interval_text(e: dict | None, digits: int = 4, missing: str = UNDEFINED) -> str:
    """"value [low, high]"; "value [–]" where the interval is undefined (e.g. one triple)."""
    if e is None:
        return missing
    return estimate_text(e.get("value"), e.get("ci_low"), e.get("ci_high"), digits, missing)


def estimate_text(value, low, high, digits: int = 4, missing: str = UNDEFINED) -> str:
    """interval_text for a value and its bounds held apart (agreement, human judgments)."""
    if value is None:
        return missing
    if low is None or high is None:
        return f"{number(value, digits)} [{UNDEFINED}]"
    return f"{number(value, digits)} [{number(low, digits)}, {number(high, digits)}]"


def p_text(p) -> str:
    """A p-value as printed everywhere: three significant digits, floored at <0.0001."""
    if p is None:
        return UNDEFINED
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def _uncalibrated_keys(summary: dict) -> set[str]:
    """Aggregates of metrics flagged uncalibrated: the table shows the word, not a number that
    looks like LPIPS (summary.json keeps the value next to the flag)."""
    return {key for info in summary.get("metrics", {}).values()
            if any(str(f).lower().startswith("uncalibrated") for f in info.get("flags", []))
            for key in info.get("aggregates", {})}


def text_table(header: list[str], body: list[list[str]]) -> str:
    """Left-aligned columns under a dashed rule, for the terminal."""
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)
