"""One lab arm trained with changed settings and scored on val only: how lab recipes are chosen
without looking at the test suite (docs/lab.md). Never writes or reads test scores.

    python benchmarks/lab_val.py --base DIR --work W --arm d_gen_rank_dropout --steps 1600 \\
        --eval-every 200 --set optim.lr=1e-3 --set seed=1 --json-lines benchmarks/results/lab_val.jsonl

The arm's `relbench train` YAML is the lab's (relbench.lab.run.train_config for the default
LabPlan), with each ``--set dotted.key=value`` (value read as YAML) applied on top; it trains on
one torch thread, as in the lab. Prints and appends one JSON line: the settings changed, and
neutral-mode val spatial accuracy (with its interval) at every evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--work", required=True, help="suites under WORK/data, the arm under WORK/NAME")
    ap.add_argument("--arm", default="d_gen_rank_dropout")
    ap.add_argument("--name", help="output directory name (default: the arm and the changes)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json-lines", help="append the result line here")
    a = ap.parse_args()

    import yaml

    from relbench.lab.base import check_world
    from relbench.lab.run import BEST_METRIC, LabPlan, arm_blocks, check_base, relbench_subprocess, train_config
    from relbench.lab.suites import write_suites
    from relbench.lab.world import world

    base, work = Path(a.base), Path(a.work)
    meta = check_base(base)
    cfg = check_world(meta, base)
    plan = LabPlan()
    if a.steps:
        plan.steps = a.steps
    if a.eval_every:
        plan.eval_every = a.eval_every
    data = work / "data"
    if not (data / "val.jsonl").is_file():
        write_suites(data, plan.n_train, plan.n_val, plan.n_test, plan.seed, world(cfg.world))
    paths = {k: data / f"{k}.jsonl" for k in ("train", "val", "test")}
    name = a.name or "-".join([a.arm, f"s{plan.steps}"] + [s.replace("=", "_") for s in a.set])
    out = work / name
    tc = train_config(a.arm, plan, base, paths, out, arm_blocks(cfg.num_layers), int(meta["max_sequence_length"]))
    for item in a.set:
        key, _, value = item.partition("=")
        node = tc
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    cfg_path = work / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(tc, sort_keys=False))
    t0 = time.perf_counter()
    args = ["train", "--config", str(cfg_path), "--no-progress"] + (["--resume"] if (out / "last").exists() else [])
    from relbench.errors import UserError

    try:
        relbench_subprocess(args, work / f"{name}.log", threads=1)
    except UserError as e:  # one line naming the log, as before
        sys.exit(f"lab_val: {e}")
    curve = []
    for line in (out / "train_log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "eval":
            summary = json.loads((out / "eval" / f"step-{rec['step']:07d}" / "summary.json").read_text())
            m = next(iter(summary["runs"].values()))["metrics"][BEST_METRIC]
            curve.append({"step": rec["step"], "value": m["value"], "ci": [m.get("ci_low"), m.get("ci_high")],
                          "both_found": rec["metrics"].get("spatial_pos_detected")})
    res = {"base": str(base), "arm": a.arm, "steps": plan.steps, "set": a.set,
           "val": {"items": plan.n_val, "seeds": tc["eval"]["seeds"]}, "curve": curve,
           "train_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(res))
    if a.json_lines:
        from record import append_jsonl

        append_jsonl(a.json_lines, res, device="cpu")


if __name__ == "__main__":
    main()
