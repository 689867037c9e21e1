"""One lab arm retrained with hard negatives, against its twin trained with swap negatives.

The hard negatives come from the base model's confusion matrix on **val** in relation mode
(`hard_source/`, one `relbench run` before any arm trains):

* the base, because its matrix exists before any arm trains, so the hard arm's negatives do not
  depend on how its twin did, and because it is what the seed proposes: negatives from what the
  pretrained model draws instead of the asked relation;
* relation mode, because in neutral mode the base is never told the relation, so its rows are
  one layout prior repeated, not confusions of the asked predicate;
* val, the split best checkpoints are already picked on, so no choice reads a test image.

The twin is the same arm of the same lab (same seed, steps and batches); both are scored by the
lab's one `relbench run` on the same test cases with the same swap negatives, and compared with
`relbench compare`'s own functions: the paired difference of the headline accuracy, and the
paired confusion cells of each asked predicate's most confused one in the source (the pair the
hard negatives were drawn from).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

SUFFIX = "_hard"
SOURCE_RUN = "base_relation"
#: the headline keys paired between the twin and the hard arm (relbench.lab.table.KEYS' judges)
PAIRED_KEYS = ("spatial_pos_acc", "spatial_pair_acc")


def source_benchmark(base_run: dict, val: Path, seeds: list[int], metric: dict, predicates: list[dict], out: Path) -> dict:
    """The benchmark that scores the base on val in relation mode: the hard negatives' source."""
    return {"name": "lab_hard_source", "suite": {"kind": "jsonl", "path": str(val)}, "seeds": seeds,
            "negatives": {"kinds": ["swap"], "per_item": "one", "seed": 0}, "resolution": 32, "batch_size": 16,
            "metrics": [metric], "runs": [{**base_run, "name": SOURCE_RUN, "prompt_mode": "relation"}],
            "predicates": predicates, "output_dir": str(out)}


def hard_train_config(twin: dict, source: Path, out: Path) -> dict:
    """The twin's `relbench train` mapping with g- drawn from the source's confusion matrix
    (the most confused predicate, top_k 1); every other setting, seed included, is the twin's."""
    cfg = copy.deepcopy(twin)
    cfg["output_dir"] = str(out)
    seed = cfg["objective"]["negatives"].get("seed", 0)
    cfg["objective"]["negatives"] = {"kinds": ["hard"], "confusion": str(source), "judge": "spatial", "top_k": 1,
                                     "run": SOURCE_RUN, "seed": seed}
    return cfg


def spatial_matrix(confusion: dict | None) -> dict | None:
    """A run's spatial confusion matrix, rows and seen shares only (with n and intervals)."""
    m = (confusion or {}).get("spatial")
    if not m:
        return None
    return {"predicates": m["predicates"],
            "rows": {a: {k: r.get(k) for k in ("n", "n_items", "seen", "ci")} for a, r in m["rows"].items()}}


def most_confused(source_matrix: dict) -> dict[str, str | None]:
    """Each asked predicate's most often seen other predicate in the source run (ties by name,
    as relbench.spec.negatives.NegativeSource.ranked orders them): the hard negative's predicate."""
    out = {}
    for asked, row in source_matrix["rows"].items():
        others = sorted((p for p, v in row["seen"].items() if p != asked and v > 0), key=lambda p: (-row["seen"][p], p))
        out[asked] = others[0] if others else None
    return out


def hard_figures(scores: str | Path, source: str | Path, twin: str, modes: tuple[str, ...] = ("neutral", "relation"),
                 stems: tuple[str, ...] = ()) -> dict:
    """The figures of the hard-negative comparison from the lab's scores and the source run:
    every scored run's confusion matrix (``stems`` in each of ``modes``), the source's, and per
    mode the hard arm minus its twin: paired differences of PAIRED_KEYS, the paired confusion
    cells asked -> asked and asked -> the source's most confused predicate."""
    from relbench.results.compare import compare_confusions, compare_paired
    from relbench.results.confusion import stored_specs
    from relbench.results.read import collect_runs, load_run_dir

    src_dir = load_run_dir(source, human=False)
    src = spatial_matrix(src_dir.summary["runs"][SOURCE_RUN].get("confusion"))
    top = most_confused(src)
    score_dir = load_run_dir(scores, human=False)
    by = {r.label: r for r in collect_runs([score_dir])}
    specs = stored_specs(score_dir.summary)
    out = {"source": {"run_dir": str(source), "run": SOURCE_RUN, "matrix": src, "most_confused": top},
           "twin": twin, "hard": twin + SUFFIX, "matrices": {}, "paired": {}}
    for mode in modes:
        out["matrices"][mode] = {s: spatial_matrix(by[f"{s}_{mode}"].summary.get("confusion"))
                                 for s in (*stems, twin + SUFFIX) if f"{s}_{mode}" in by}
        a, b = by.get(f"{twin}_{mode}"), by.get(f"{twin}{SUFFIX}_{mode}")
        if a is None or b is None:
            continue
        keys = [d for d in (compare_paired(a, b, k) for k in PAIRED_KEYS) if d is not None]
        cells = []
        for c in compare_confusions(a, b, specs):
            if c["judge"] != "spatial":
                continue
            for asked, row in c["rows"].items():
                for seen in dict.fromkeys((asked, top.get(asked))):
                    if seen is not None and seen in row["diff"]:
                        ci = row["ci"][seen]
                        cells.append({"asked": asked, "seen": seen, "value": row["diff"][seen],
                                      "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                                      "n": row["n"], "p_value": row["p_value"][seen]})
        out["paired"][mode] = {
            "keys": [{k: d.get(k) for k in ("key", "run", "against", "value", "ci_low", "ci_high", "p_value", "n")}
                     for d in keys],
            "confusion": cells}
    return out


def _interval(v: float | None, lo: float | None, hi: float | None, p: float | None = None) -> str:
    s = "—" if v is None else f"{v:+.3f}"
    if lo is not None and hi is not None:
        s += f" [{lo:+.3f}, {hi:+.3f}]"
    return s + ("" if p is None else f", p {p:.3g}")


def matrix_markdown(m: dict) -> list[str]:
    """One matrix as a table: a row per asked predicate (its n), a column per seen predicate."""
    preds = m["predicates"]
    lines = ["| asked \\ seen | n | " + " | ".join(preds) + " |", "|---|---|" + "---|" * len(preds)]
    for asked, row in m["rows"].items():
        lines.append(f"| {asked} | {row['n']} | " + " | ".join(f"{row['seen'].get(p, 0.0):.3f}" for p in preds) + " |")
    return lines


def hard_markdown(f: dict) -> str:
    lines = [f"# {f['hard']} against {f['twin']}", "",
             f"Hard negatives from {f['source']['run_dir']} ({f['source']['run']}, spatial judge, top 1): "
             + ", ".join(f"{a} -> {p}" for a, p in f["source"]["most_confused"].items()), "", "Source matrix:", "",
             *matrix_markdown(f["source"]["matrix"])]
    for mode, runs in f["matrices"].items():
        for stem, m in runs.items():
            if m:
                lines += ["", f"{stem}, {mode} mode:", "", *matrix_markdown(m)]
    for mode, p in f["paired"].items():
        lines += ["", f"{f['hard']} − {f['twin']}, {mode} mode (paired, shared cases; 95% interval, permutation p):", "",
                  "| figure | difference |", "|---|---|"]
        lines += [f"| {d['key']} | {_interval(d['value'], d['ci_low'], d['ci_high'], d['p_value'])} |" for d in p["keys"]]
        lines += [f"| seen share {c['asked']} -> {c['seen']} (n {c['n']}) | "
                  f"{_interval(c['value'], c['ci_low'], c['ci_high'], c['p_value'])} |" for c in p["confusion"]]
    return "\n".join(lines) + "\n"


def write_hard(scores: str | Path, source: str | Path, twin: str, out_prefix: str | Path, stems: tuple[str, ...]) -> dict:
    from relbench.io.atomic import write_text

    f = hard_figures(scores, source, twin, stems=stems)
    write_text(f"{out_prefix}.json", json.dumps(f, indent=1))
    write_text(f"{out_prefix}.md", hard_markdown(f))
    return f
