"""Reading a run directory back: the one reader behind compare, reports, annotate, the lab
and the notebook API. Readers never write; human results are computed on read.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path


from relbench.errors import UserError
from relbench.results.aggregate import AggregateSpec


@dataclass
class Run:
    """One run (generator x prompt mode) of a run directory, with its per-case rows."""

    label: str
    name: str
    path: Path
    summary: dict  # summary.json's runs[name]
    rows: list[dict]
    specs: dict[str, AggregateSpec]  # aggregate key -> its spec as summary.json stores it

    @property
    def is_reference(self) -> bool:
        return bool(self.summary.get("is_reference"))

    @property
    def metrics(self) -> dict:
        return self.summary.get("metrics", {})


@dataclass
class RunDir:
    path: Path
    summary: dict
    manifest: dict
    columns: list[str]
    rows: list[dict]
    specs: dict[str, AggregateSpec] = field(default_factory=dict)


def _parse(value: str):
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value


def read_samples(path: Path) -> tuple[list[str], list[dict]]:
    """samples.csv with metric columns parsed to float (None where empty; text columns kept)."""
    from relbench.results.write import BASE_COLUMNS, RENAMED_COLUMNS

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        columns = [RENAMED_COLUMNS.get(c, c) for c in next(reader, [])]
        metric_cols = [c for c in columns if c not in BASE_COLUMNS]
        rows = []
        for values in reader:
            row = dict(zip(columns, values))
            for c in metric_cols:
                row[c] = _parse(row.get(c, ""))
            rows.append(row)
    return columns, rows


def aggregate_specs(summary: dict) -> dict[str, AggregateSpec]:
    """Each aggregate's spec by key, as summary.json stores it (no plugin is loaded: a run
    directory is compared the same wherever it is read). Empty for a summary written before
    specs were stored; compare then says that paired tests need a rerun."""
    return {k: AggregateSpec.from_json(spec) for info in (summary.get("metrics") or {}).values()
            for k, spec in (info.get("specs") or {}).items()}


def headline_keys(specs: dict[str, AggregateSpec], keys: list[str]) -> list[str]:
    """The judges' headline relation accuracies among ``keys``, as their metrics declare them."""
    return [k for k in keys if k in specs and specs[k].headline]


def load_run_dir(path: str | Path, human: bool = True) -> RunDir:
    """A directory written by ``relbench run``; a UserError naming what is missing otherwise.

    With ``human``, the summary holds the human judge computed from the answer files
    (relbench.results.human): reading never writes into the directory."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: no such run directory")
    for name in ("summary.json", "samples.csv"):
        if not (p / name).is_file():
            raise UserError(f"{p}: not a run directory (no {name}; `relbench run --out {p}` writes one)")
    try:
        summary = json.loads((p / "summary.json").read_text())
        manifest = json.loads((p / "manifest.json").read_text()) if (p / "manifest.json").is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: cannot read summary.json/manifest.json: {exc}") from None
    if not isinstance(summary.get("runs"), dict):
        raise UserError(f"{p}/summary.json: no 'runs' mapping")
    columns, rows = read_samples(p / "samples.csv")
    rd = RunDir(p, summary, manifest, columns, rows, aggregate_specs(summary))
    if not human:
        return rd
    from relbench.results.human import add_human

    return add_human(rd)


def collect_runs(dirs: list[RunDir]) -> list[Run]:
    """Every run of every directory, labelled uniquely (run name, else dir:run).

    The suite's reference run appears once: directories of the same suite hold the same
    reference numbers, so a second copy with identical metrics is dropped (a differing one,
    from another suite, is kept and labelled by its directory)."""
    pairs = []
    refs: list[dict] = []
    for d in dirs:
        for name, info in d.summary["runs"].items():
            if info.get("is_reference"):
                if any(info.get("metrics") == seen for seen in refs):
                    continue
                refs.append(info.get("metrics"))
            pairs.append((d, name))
    names = [n for _, n in pairs]
    labels: list[str] = []
    for d, name in pairs:
        label = name if names.count(name) == 1 else f"{d.path.name}:{name}"
        base, i = label, 2
        while label in labels:
            label, i = f"{base}#{i}", i + 1
        labels.append(label)
    out = []
    for (d, name), label in zip(pairs, labels):
        rows = [r for r in d.rows if r.get("run") == name]
        out.append(Run(label, name, d.path, d.summary["runs"][name], rows, d.specs))
    return out
