"""Numbers as text, the same everywhere (terminal, compare, reports): an undefined interval
is shown as a dash, never as a number.
"""

from __future__ import annotations

import math



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
        if prov.get("detector") and prov.get("model"):
            thresholds = ", ".join(f"{k} {v}" for k, v in prov.items() if k.endswith("threshold"))
            digest = (prov.get("weights_sha256") or "not hashed")[:12]
            lines.append(f"detector {name}: {prov['detector']} {prov['model']} (sha256 {digest}), {thresholds}")
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
    """Left-aligned columns under a dashed rule, for the terminal. Four lines, not rich or
    tabulate: the output is plain text tests compare byte for byte, the same in a log file as
    on a terminal, and the core takes no terminal library."""
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def format_agreement(summary: dict) -> str:
    """Terminal lines: one per run and judge pair (per predicate in summary.json)."""
    lines = []
    for run, info in summary.get("runs", {}).items():
        for pair, e in (info.get("agreement") or {}).items():
            o = e["overall"]
            if o["share"] is None:
                continue
            share, kappa = estimate_text(o["share"], *o["share_ci"], 3), estimate_text(o["kappa"], *o["kappa_ci"], 3, "undefined")
            lines.append(f"agreement {run} {pair} ({e['predicates']} predicates, {o['n']} images): "
                         f"share {share}, kappa {kappa}")
    return "\n".join(lines)
