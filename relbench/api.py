"""The notebook API: run a benchmark, or read a run directory, as pandas DataFrames.

    import relbench
    res = relbench.run("benchmark.yaml", limit=5, output_dir="runs/nb")
    res.summary.query("breakdown == 'all'")        # run, metric, breakdown, value, ci_low, ci_high, n, chance
    res.samples.groupby("run")["spatial_correct"].mean()

The frames are read back from the files a run writes (samples.csv, summary.json), so
``load_run(dir)`` gives the same frames for a run made from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relbench.errors import UserError

SUMMARY_COLUMNS = ["run", "metric", "breakdown", "value", "ci_low", "ci_high", "n", "chance"]


@dataclass
class RunFrames:
    """One run directory as DataFrames; ``raw`` is summary.json with the human judge computed
    from the answer files (relbench.results.human), ``manifest`` manifest.json as written."""

    dir: Path
    samples: Any  # pandas.DataFrame: samples.csv, one row per case x run
    summary: Any  # pandas.DataFrame: one row per run x aggregate x breakdown (SUMMARY_COLUMNS)
    raw: dict
    manifest: dict


def _pandas():
    try:
        import pandas
    except ImportError:
        raise UserError("relbench's notebook API needs pandas: pip install 'relbench[notebook]'") from None
    return pandas


def tidy_summary(summary: dict) -> list[dict]:
    """summary.json's nested numbers as flat rows; breakdown is 'all', 'predicate:<p>',
    'negative_kind:<k>' or 'seed_consistency:k<j>' (at least j of the seeds right)."""
    rows = []

    def add(run, key, breakdown, e):
        if isinstance(e, Mapping):
            rows.append({"run": run, "metric": key, "breakdown": breakdown,
                         **{c: e.get(c) for c in SUMMARY_COLUMNS[3:]}})

    for run, r in summary.get("runs", {}).items():
        for key, e in r.get("metrics", {}).items():
            add(run, key, "all", e)
        for group, prefix in (("by_predicate", "predicate"), ("by_negative_kind", "negative_kind")):
            for value, entries in r.get(group, {}).items():
                for key, e in entries.items():
                    add(run, key, f"{prefix}:{value}", e)
        for key, by_k in r.get("seed_consistency", {}).items():
            for k, e in by_k.items():
                add(run, key, f"seed_consistency:{k}", e)
    return rows


def load_run(run_dir: str | Path) -> RunFrames:
    """A directory written by ``relbench run`` (or ``relbench.run``) as DataFrames."""
    d = Path(run_dir)
    files = {name: d / name for name in ("summary.json", "samples.csv", "manifest.json")}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise UserError(f"{d}: not a finished run directory (no {missing[0]}; run `relbench run` first)")
    pd = _pandas()
    from relbench.results.read import load_run_dir, read_samples

    summary = load_run_dir(d).summary
    # the one samples.csv reader (compare and reports read with it too): text columns stay text
    # (an id "007" or "1e5" is not the number 7 or 100000), metric columns are floats, empty = NaN
    columns, rows = read_samples(files["samples.csv"])
    samples = pd.DataFrame(rows, columns=columns).astype({"seed": "int64", "noise_seed": "int64"})
    tidy = pd.DataFrame(tidy_summary(summary), columns=SUMMARY_COLUMNS)
    return RunFrames(d, samples, tidy, summary, json.loads(files["manifest.json"].read_text()))


def run(config_or_path: str | Path | Mapping | None = None, *, show_progress: bool = False,
        report: bool = False, **overrides) -> RunFrames | None:
    """Generate and score a benchmark, write its run directory, and return it as DataFrames.

    ``config_or_path``: a benchmark YAML, the same content as a mapping, or None for
    ./benchmark.yaml (else the shipped default). ``overrides`` replace top-level keys, validated
    like the file: ``relbench.run("b.yaml", limit=5, seeds=[0], output_dir="runs/nb")``.
    Returns None on a non-zero rank of a multi-process launch.
    """
    _pandas()  # fail before any work, not after it
    from relbench.spec.config import default_benchmark_path, parse_benchmark, read_benchmark_file
    from relbench.results.write import write_results
    from relbench.engine.execute import execute
    from relbench.engine.plan import plan

    if isinstance(config_or_path, Mapping):
        source, data, lines = "<config>", dict(config_or_path), {}
    else:
        source = str(config_or_path or default_benchmark_path())
        data, lines = read_benchmark_file(source)
    data.update(overrides)
    lines = {k: v for k, v in lines.items() if not (k and k[0] in overrides)}
    from relbench.results.negative_source import read_for

    bench = parse_benchmark(data, source, lines)
    p = plan(bench, source=source, lines=lines, negative_source=read_for(bench, source, lines))
    from relbench.io.locks import main_process, writer_lock

    with writer_lock(p.out, "relbench.run", enabled=main_process()):
        result = execute(p, show_progress=show_progress)
        if result is None:
            return None
        write_results(p, result, argv=["relbench.run", source, *(f"{k}={v!r}" for k, v in overrides.items())])
        if report:
            from relbench.reports import build_report

            build_report([p.out], p.out / "report.html")
        return load_run(p.out)
