"""`relbench lab run`: the origin experiment on the mini base, with the project's own tools.

Four arms of flux_graph_lora, trained by `relbench train` (unchanged, one YAML each) on the
lab's JSONL suites; each arm's best checkpoint (by neutral-mode spatial accuracy on val) is
scored by `relbench run` on the test suite in both prompt modes next to the base model (`flux`
on the mini directory) and the shapes baselines; `relbench compare` gives the paired tests.

    (a) L_gen, relation prompts              the seed
    (b) L_gen, neutral-prompt dropout 0.5
    (c) L_gen + L_rel_rank, relation prompts
    (d) L_gen + L_rel_rank, dropout 0.5

Every arm shares every other setting (LabPlan); nothing is tuned per arm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from relbench.errors import UserError

ARMS = {
    "a_gen": {"rank_weight": 0.0, "neutral_prompt_prob": 0.0},
    "b_gen_dropout": {"rank_weight": 0.0, "neutral_prompt_prob": 0.5},
    "c_gen_rank": {"rank_weight": 1.0, "neutral_prompt_prob": 0.0},
    "d_gen_rank_dropout": {"rank_weight": 1.0, "neutral_prompt_prob": 0.5},
}
SPATIAL = {"name": "spatial", "args": {"detector": "shapes_snap", "rule_set": "relbench"}}
BEST_METRIC = "spatial_pos_acc"


@dataclass
class LabPlan:
    n_train: int = 2000
    # val: the 48 held-out triples test does not use, at two seeds (96 images per evaluation).
    # Until round 9 it was 32 triples at one seed, most of them test
    # triples too, and best checkpoints were picked on 1/32 steps (docs/lab-notebook.md, round 9)
    n_val: int = 48
    n_test: int = 96
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1])  # the arms' evaluations on val
    # arm (d) on round 9's base A, val: 0.59 / 0.68 / 0.93 of neutral-mode images right at steps
    # 800 / 1200 / 1600 (arm seed 1: 0.60 / 0.72 / 0.89), still rising; 1600 steps of four arms
    # side by side on 2 cores took 709-713 s (three builds), which keeps the whole lab under its 30
    # (docs/lab-notebook.md, round 9)
    steps: int = 1600
    batch_size: int = 16
    lr: float = 2e-3  # arm (c) on val: 0.66 at step 600 against 0.56 at 1e-3 (docs/lab-notebook.md round 5)
    eval_every: int = 200
    # the arms' flow loss draws t uniformly in [t_low, 1] (t = 1 is pure noise). The seed's 0.5
    # (the noisy half) left the graph little say over the layout, which the first sampling steps
    # decide: arm (d) on val (96 images, step 800) was right in 0.47 / 0.60 / 0.82 / 0.75 of
    # neutral-mode images at t_low 0.5 / 0.6 / 0.7 / 0.8 (docs/lab-notebook.md, round 6)
    t_low: float = 0.7
    # the base is a plain rectified-flow model, not step-distilled as FLUX.1-schnell is: at 8
    # steps it drew both objects in 0.84 of probe images, at 4 in 0.78
    sample_steps: int = 8
    arms: tuple[str, ...] = tuple(ARMS)
    seed: int = 0
    # arms trained at once (0: one per core, at most one per arm). Every arm trains on one torch
    # thread, however many run: an arm's bytes depend on its thread count (1 and 2 threads gave
    # different weights), so they must not depend on the machine's cores or on this setting. A
    # step of the mini model is too small to keep two threads busy: two one-thread arms side by
    # side took 21 s where one after the other took 35 s (benchmarks/lab.py prints the times)
    jobs: int = 0
    # an arm also retrained with hard negatives from the base's confusion matrix (relbench.lab.hard),
    # trained as ARM_hard beside the others and scored with them; None: none
    hard: str | None = None

    @classmethod
    def smoke(cls) -> "LabPlan":
        """For a smoke base: its world has 4 triples, so evaluation images come from 8 seeds (32
        test cases); one arm, 100 steps, evaluated once (about 50 s on 2 cores)."""
        return cls(n_train=400, n_val=4, n_test=4, seeds=list(range(8)), eval_seeds=[0, 1, 2, 3], steps=100,
                   eval_every=100, arms=("d_gen_rank_dropout",))


def check_base(base: Path) -> dict:
    meta = base / "lab_base.json"
    if not (base / "model_index.json").is_file() or not meta.is_file():
        raise UserError(f"lab run: {base} is not a lab base (no model_index.json / lab_base.json); "
                        f"build one with `relbench lab build-base --out {base}`")
    return json.loads(meta.read_text())


def arm_blocks(num_layers: int) -> list[int]:
    """The double blocks every arm puts LoRA and graph injection on: the upper half. All four
    blocks did worse on val (0.698 against 0.938 on round 8's build B; docs/lab-notebook.md)."""
    return list(range(num_layers // 2, num_layers))


def train_config(arm: str, plan: LabPlan, base: Path, data: dict, out: Path, blocks: list[int], msl: int) -> dict:
    """The YAML mapping `relbench train` reads for one arm."""
    return {
        "model": str(base), "train_jsonl": str(data["train"]), "val_jsonl": str(data["val"]),
        "output_dir": str(out), "resolution": 32, "epochs": 10_000, "max_steps": plan.steps,
        "batch_size": plan.batch_size, "seed": plan.seed, "device": "cpu", "max_sequence_length": msl,
        # a small text encoder (one graph convolution, 128 wide), trained at lr 1e-4. The default
        # one (6 convolutions, 512 wide) collapsed when trained (at the arms' lr 1e-3 every graph
        # got the same tokens in 10 steps; at 1e-4 in 150), and frozen it could not tell "left
        # of" from "right of", whose pooled CLIP vectors are at cosine 0.95: an arm learned
        # nothing in 1200 steps, even on its training triples (docs/lab-notebook.md, round 3)
        "encoder": {"kind": "text", "layers": 1, "width": 128, "embed_dim": 128}, "train_encoder": True,
        "lora": {"rank": 8, "alpha": 8, "blocks": blocks, "targets": ["attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"]},
        "injection": {"blocks": blocks},
        "objective": {**ARMS[arm], "timesteps": {"kind": "uniform", "low": plan.t_low, "high": 1.0},
                      "negatives": {"kinds": ["swap"], "seed": 0}},
        "optim": {"lr": plan.lr, "lr_encoder": 1e-4},
        "eval": {"every_steps": plan.eval_every, "limit": plan.n_val, "seeds": plan.eval_seeds, "metrics": ["pair_mse", SPATIAL],
                 "prompt_mode": "neutral", "steps": plan.sample_steps, "best_metric": BEST_METRIC, "batch_size": 16},
        "log_every": 10, "save_every": plan.eval_every,
    }


def flux_args(plan: LabPlan, base: Path, msl: int) -> dict:
    return {"model": str(base), "steps": plan.sample_steps, "max_sequence_length": msl, "device": "cpu"}


def score_benchmark(plan: LabPlan, base: Path, data: dict, arm_dirs: dict[str, Path], out: Path, msl: int,
                    predicates: list[dict]) -> dict:
    """``predicates``: the world's vocabulary (relbench.lab.world.world_vocabulary)."""
    flux_args_ = flux_args(plan, base, msl)
    runs = []
    for mode in ("relation", "neutral"):
        runs.append({"name": f"base_{mode}", "generator": "flux", "prompt_mode": mode, "args": flux_args_})
        for arm, d in arm_dirs.items():
            runs.append({"name": f"{arm}_{mode}", "generator": "flux_graph_lora", "prompt_mode": mode,
                         "args": {**flux_args_, "ckpt": str(d)}})
    runs += [{"name": n, "generator": f"shapes_{n}"} for n in ("oracle", "ignore_relation", "inverse")]
    return {"name": "lab", "suite": {"kind": "jsonl", "path": str(data["test"])}, "seeds": plan.seeds,
            "negatives": {"kinds": ["swap"], "per_item": "one", "seed": 0}, "resolution": 32, "batch_size": 16,
            "metrics": ["pair_mse", SPATIAL], "runs": runs, "predicates": predicates, "output_dir": str(out)}


def relbench_subprocess(args: list[str], log: Path, threads: int | None = None) -> None:
    """One `relbench` command in its own process (as a user runs it), output appended to ``log``;
    ``threads`` sets its torch CPU threads (OMP_NUM_THREADS)."""
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(log, "a") as fh:
        fh.write(f"$ relbench {' '.join(args)}\n")
        fh.flush()
        rc = subprocess.call([sys.executable, "-m", "relbench", *args], stdout=fh, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        raise UserError(f"lab run: `relbench {' '.join(args)}` failed (exit {rc}); see {log}")


def run_lab(base: str | Path, out: str | Path, plan: LabPlan = LabPlan(), progress: bool = True) -> dict:
    """Suites, arms, scores, comparison; returns where everything is. Rerunning resumes: a
    finished arm (its last/ at plan.steps) and a finished scoring run are reused."""
    import yaml

    from relbench.lab.base import check_world
    from relbench.lab.suites import eval_triples_needed, split_triples, write_suites
    from relbench.lab import hard
    from relbench.lab.world import layout_chance, world, world_vocabulary

    base, out = Path(base), Path(out)
    meta = check_base(base)
    cfg = check_world(meta, base)
    w = world(cfg.world)  # the suites use the world the base was built for
    n_eval = len(split_triples(plan.seed, w)[1])
    wanted = eval_triples_needed(plan.n_val, plan.n_test, w)
    if wanted > n_eval:
        raise UserError(f"lab run: {base} was built for the {w.name!r} world, which has {n_eval} evaluation triples; "
                        f"the plan asks for {wanted} (use `--smoke` with a smoke base)")
    msl = int(meta["max_sequence_length"])
    blocks = arm_blocks(cfg.num_layers)
    unknown = [a for a in plan.arms if a not in ARMS]
    if unknown:
        raise UserError(f"lab run: unknown arm {unknown[0]!r} (known: {', '.join(ARMS)})")
    if plan.hard is not None and (plan.hard not in plan.arms or not ARMS[plan.hard]["rank_weight"]):
        raise UserError(f"lab run: --hard {plan.hard!r} must be one of the trained arms with a rank term "
                        f"(hard negatives are L_rel_rank's g-; trained: {', '.join(plan.arms)})")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "lab.log"
    (out / "plan.json").write_text(json.dumps(asdict(plan), indent=1))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = write_suites(out / "data", plan.n_train, plan.n_val, plan.n_test, plan.seed, w)
    timings["suites_s"] = time.perf_counter() - t0
    vocab = world_vocabulary(w)
    configs = {arm: train_config(arm, plan, base, data, out / "arms" / arm, blocks, msl) for arm in plan.arms}
    (out / "configs").mkdir(parents=True, exist_ok=True)
    if plan.hard is not None:
        t = time.perf_counter()
        source = out / "hard_source"
        src_cfg = out / "configs" / "hard_source.yaml"
        src_cfg.write_text(yaml.safe_dump(hard.source_benchmark(
            {"generator": "flux", "args": flux_args(plan, base, msl)}, data["val"], plan.eval_seeds, SPATIAL, vocab, source),
            sort_keys=False))
        if progress:
            print(f"lab: scoring the base on val (relation mode), the hard negatives' source -> {source}", flush=True)
        relbench_subprocess(["run", "--config", str(src_cfg), "--no-report"] + ([] if progress else ["--no-progress"]), log)
        name = plan.hard + hard.SUFFIX
        configs[name] = hard.hard_train_config(configs[plan.hard], source, out / "arms" / name)
        timings["hard_source_s"] = time.perf_counter() - t
    jobs = plan.jobs or min(len(configs), os.cpu_count() or 1)
    arm_dirs = {}

    def train(arm: str) -> None:
        t = time.perf_counter()
        d = out / "arms" / arm
        cfg_path = out / "configs" / f"{arm}.yaml"
        cfg_path.write_text(yaml.safe_dump(configs[arm], sort_keys=False))
        state = d / "last" / "trainer_state" / "state.json"
        done = state.is_file() and json.loads(state.read_text()).get("step") == plan.steps
        if not done:
            if progress:
                print(f"lab: training arm {arm} ({plan.steps} steps) -> {d}", flush=True)
            # each arm logs to its own file: arms trained side by side would interleave lines
            relbench_subprocess(["train", "--config", str(cfg_path), "--no-progress"] + (["--resume"] if (d / "last").exists() else []),
                      out / f"lab-{arm}.log", threads=1)
        timings[f"train_{arm}_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        # list(): the first arm that fails raises here, after the others have finished
        list(pool.map(train, configs))
    timings["train_s"] = time.perf_counter() - t
    for arm in configs:
        d = out / "arms" / arm
        arm_dirs[arm] = d / "best" if (d / "best").exists() else d / "last"
    t = time.perf_counter()
    bench = out / "configs" / "score.yaml"
    bench.write_text(yaml.safe_dump(score_benchmark(plan, base, data, arm_dirs, out / "scores", msl, vocab), sort_keys=False))
    if progress:
        print(f"lab: scoring {len(arm_dirs)} arm(s), the base and the baselines -> {out / 'scores'}", flush=True)
    # lab.log gets the run's plain progress lines (its stderr is no terminal) unless --no-progress
    relbench_subprocess(["run", "--config", str(bench), "--no-report"] + ([] if progress else ["--no-progress"]), log)
    timings["score_s"] = time.perf_counter() - t
    t = time.perf_counter()
    relbench_subprocess(["compare", str(out / "scores"), "-o", str(out / "compare")], log)
    timings["compare_s"] = time.perf_counter() - t
    from relbench.lab.table import write_table
    from relbench.reports.curves import build_curves

    write_table(out / "scores", out / "table", ("base", *configs), layout_chance(w))
    if plan.hard is not None:
        hard.write_hard(out / "scores", out / "hard_source", plan.hard, out / "hard", ("base", *plan.arms))
    build_curves([out], out / "curves.html")
    timings["total_s"] = time.perf_counter() - t0
    result = {"base": str(base), "out": str(out), "arms": {a: str(d) for a, d in arm_dirs.items()},
              "scores": str(out / "scores" / "summary.json"), "table": str(out / "table.md"),
              "curves": str(out / "curves.html"), "timings": timings,
              **({"hard": str(out / "hard.md")} if plan.hard is not None else {})}
    (out / "lab.json").write_text(json.dumps(result, indent=1))
    return result
