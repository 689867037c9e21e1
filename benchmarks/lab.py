"""The lab's figures (docs/lab.md), measured, never asserted: does the mini base draw both objects,
does any arm draw the relation from the graph alone, and how long does the whole lab take.

    python benchmarks/lab.py --work /work/lab-out/bench --json benchmarks/results/lab.json
    python benchmarks/lab.py --base DIR --build-seconds S --work W --json J   # reuse a built base
    python benchmarks/lab.py --smoke --work W --json J                        # the test suite's smoke lab
    python benchmarks/lab.py --seed 1 --work W --json J                       # another build of the same recipe
    python benchmarks/lab.py --base DIR --arms d_gen_rank_dropout --hard d_gen_rank_dropout --work W --json J
                                                          # arm (d) and its twin with hard negatives

Prints and writes: wall times (build, each arm, scoring), the machine's load average before and
after (2 cores are shared here: a figure measured under load says so), the base's both-objects
rate in each prompt mode, every run's relation accuracy with its 95% interval, chance and p,
the paired tests between arms (relbench.lab.table), every run's spatial confusion matrix, and
with --hard the hard-negative arm against its twin (relbench.lab.hard).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="directory for the base (unless --base) and the lab output")
    ap.add_argument("--base", help="an existing lab base (skip the build)")
    ap.add_argument("--build-seconds", type=float, help="wall time of that base's build, if measured elsewhere")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--arms", help="comma-separated subset of arms")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--seed", type=int, default=0, help="the base's seed (the suites and arms keep seed 0)")
    ap.add_argument("--jobs", type=int, help="arms trained at once (default: one per core)")
    ap.add_argument("--hard", metavar="ARM", help="also retrain ARM with hard negatives (relbench lab run --hard)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()

    from relbench.lab.base import BaseConfig, build_base
    from relbench.lab.hard import spatial_matrix
    from relbench.lab.run import LabPlan, run_lab

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    load = {"before": os.getloadavg()}
    t0 = time.perf_counter()
    cfg = BaseConfig.smoke(a.seed) if a.smoke else BaseConfig(seed=a.seed)
    if a.base:  # the JSON records the config that base was built with, not today's defaults
        base, build_s = Path(a.base), a.build_seconds
        cfg = BaseConfig(**json.loads((base / "lab_base.json").read_text())["config"])
    else:
        base = build_base(work / "base", cfg, progress=False)
        build_s = time.perf_counter() - t0
    load["after_build"] = os.getloadavg()
    plan = LabPlan.smoke() if a.smoke else LabPlan()
    if a.arms:
        plan = replace(plan, arms=tuple(a.arms.split(",")))
    if a.steps:
        plan = replace(plan, steps=a.steps, eval_every=min(plan.eval_every, a.steps))
    if a.eval_every:
        plan = replace(plan, eval_every=a.eval_every)
    if a.jobs:
        plan = replace(plan, jobs=a.jobs)
    if a.hard:
        plan = replace(plan, hard=a.hard)
    res = run_lab(base, work / "lab", plan, progress=True)
    load["after"] = os.getloadavg()
    table = json.loads((work / "lab" / "table.json").read_text())
    rows = {r["run"]: r for r in table["rows"]}
    figures = {
        "base_both_found": {m: rows.get(f"base_{m}", {}).get("spatial_pos_detected") for m in ("relation", "neutral")},
        "neutral_relation_acc": {r: rows[r].get("spatial_pos_acc") for r in rows if r.endswith("_neutral")},
        "relation_relation_acc": {r: rows[r].get("spatial_pos_acc") for r in rows if r.endswith("_relation") and r != "ignore_relation"},
    }
    best = max((v for v in figures["neutral_relation_acc"].values() if v), key=lambda c: c["value"], default=None)
    total = (build_s or 0.0) + res["timings"]["total_s"]
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_1_5_15": load,
                    "torch_threads": __import__("torch").get_num_threads()},
        "base_config": asdict(cfg), "base": str(base), "plan": asdict(plan),
        "timings": {"build_s": build_s, **res["timings"], "lab_total_s": total},
        "figures": figures,
        "criteria": {
            "base_both_found_ge_0.9": bool(figures["base_both_found"]["relation"]
                                           and figures["base_both_found"]["relation"]["value"] >= 0.9),
            # None where the best arm's interval is undefined (fewer than stats.MIN_TRIPLES triples:
            # the smoke world has 4); its binomial p against the world's chance is the next entry
            "some_arm_neutral_acc_ge_0.8_ci_above_chance": (None if best and best["ci_low"] is None else
                                                            bool(best and best["value"] >= 0.8 and best["ci_low"] > best["chance"])),
            "best_arm_neutral_p_chance": best and best.get("p_chance"),
            "whole_lab_le_30_min": total <= 1800 if build_s is not None else None,
        },
        "paired": table["paired"],
        "confusion_spatial": {name: spatial_matrix(info.get("confusion"))
                              for name, info in json.loads((work / "lab" / "scores" / "summary.json").read_text())["runs"].items()},
    }
    if a.hard:
        out["hard"] = json.loads((work / "lab" / "hard.json").read_text())
    from record import write_json

    write_json(a.json, out, device="cpu", indent=1)
    print(json.dumps({k: out[k] for k in ("timings", "figures", "criteria")}, indent=1))


if __name__ == "__main__":
    main()
