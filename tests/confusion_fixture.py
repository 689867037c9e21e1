"""A planted run directory for hard and adversarial negatives: summary.json with a confusion
section (runs.<run>.confusion.<judge>, as the confusion matrices write it), samples.csv with
the judges' per-sample columns, manifest.json with the run's fingerprint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from relbench.results.write import BASE_COLUMNS

FINGERPRINT = "f00dfeedcafe0001"


def confusion(rows: dict[str, dict[str, float]], n: int = 10) -> dict:
    """One judge's matrix: asked predicate -> shares seen (intervals and chance are filler)."""
    preds = sorted({p for r in rows.values() for p in r} | set(rows))
    return {"predicates": preds,
            "rows": {a: {"n": n, "n_items": n, "seen": seen, "ci": {p: [0.0, 1.0] for p in seen},
                         "chance": {p: 1 / len(preds) for p in seen}} for a, seen in rows.items()}}


def plant_run(path: Path, spatial: dict | None = None, vlm: dict | None = None, samples: list[dict] = (),
              run: str = "gen", rule_set: str = "relbench") -> Path:
    """A run directory named ``path`` with run ``run`` (and a reference run before it, so the
    default pick must skip it) whose confusion rows are ``spatial`` / ``vlm`` and whose
    samples.csv holds ``samples`` (BASE_COLUMNS plus pos_boxes and vlm_pos_wrong)."""
    path.mkdir(parents=True, exist_ok=True)
    conf = {k: confusion(v) for k, v in (("spatial", spatial), ("vlm_judge", vlm)) if v is not None}
    summary = {"runs": {"reference": {"is_reference": True, "metrics": {}},
                        run: {"is_reference": False, "fingerprint": FINGERPRINT, "metrics": {}, "confusion": conf}}}
    (path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (path / "manifest.json").write_text(json.dumps({"runs": {run: {"fingerprint": FINGERPRINT}},
                                                    "metrics": {"spatial": {"args": {"rule_set": rule_set}}}}))
    columns = BASE_COLUMNS + ["pos_boxes", "vlm_pos_wrong"]
    with open(path / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for r in samples:
            w.writerow({"run": run, **r})
    return path
