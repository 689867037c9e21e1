"""The `relbench lab` subcommands (argument parsing only; the work is in base.py and run.py)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from relbench.lab.base import BaseConfig

    lab = sub.add_parser("lab", help="the mini FLUX world: pretrain a tiny base, run the origin experiment (docs/lab.md)")
    lsub = lab.add_subparsers(dest="lab_command", metavar="{build-base,run}")
    b = lsub.add_parser("build-base", help="write a mini FLUX.1-schnell pipeline pretrained on shapes-world images")
    b.add_argument("--out", required=True, metavar="DIR", help="pipeline directory to write (resumes DIR.build/)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--smoke", action="store_true", help="the reduced base of the test suite's smoke lab")
    b.add_argument("--flux-steps", type=int, metavar="N", help=f"transformer pretraining steps (default {BaseConfig.flux_steps})")
    b.add_argument("--continue-from", metavar="SRC", help="train a written base --flux-steps more steps into --out")
    b.add_argument("--lr", type=float, default=3e-4, help="with --continue-from: peak learning rate (default 3e-4)")
    b.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (1 is fastest on a busy machine)")
    b.add_argument("--no-progress", action="store_true")
    r = lsub.add_parser("run", help="train arms (a)-(d) with `relbench train`, score with `relbench run`, compare")
    r.add_argument("--base", required=True, metavar="DIR", help="a directory written by `relbench lab build-base`")
    r.add_argument("--out", required=True, metavar="DIR", help="suites, arms, scores, comparison (rerun resumes)")
    r.add_argument("--smoke", action="store_true", help="one arm, few steps: the test suite's smoke lab")
    r.add_argument("--arms", metavar="A,B", help="subset of a_gen,b_gen_dropout,c_gen_rank,d_gen_rank_dropout")
    r.add_argument("--steps", type=int, metavar="N", help="training steps per arm")
    r.add_argument("--jobs", type=int, metavar="N",
                   help="arms trained at once, one torch thread each (default: one per core)")
    r.add_argument("--hard", metavar="ARM", help="also retrain ARM (one with a rank term, e.g. d_gen_rank_dropout) as "
                   "ARM_hard with hard negatives from the base's confusion matrix on val, scored beside it (hard.md)")
    r.add_argument("--no-progress", action="store_true")


def cmd_lab(args) -> int:
    from dataclasses import replace

    from relbench.errors import UserError

    if args.lab_command is None:
        raise UserError("lab: give a subcommand: build-base or run")
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if args.lab_command == "build-base" and args.continue_from:
        from relbench.lab.base import continue_base

        if not args.flux_steps or args.flux_steps < 1:
            raise UserError("lab build-base: --continue-from needs --flux-steps N (N >= 1)")
        continue_base(args.continue_from, args.out, args.flux_steps, args.lr, progress=not args.no_progress)
        return 0
    if args.lab_command == "build-base":
        from relbench.lab.base import BaseConfig, build_base

        cfg = BaseConfig.smoke(args.seed) if args.smoke else BaseConfig(seed=args.seed)
        if args.flux_steps is not None:
            if args.flux_steps < 1:
                raise UserError(f"lab build-base: --flux-steps must be at least 1, got {args.flux_steps}")
            cfg = replace(cfg, flux_steps=args.flux_steps)
        build_base(args.out, cfg, progress=not args.no_progress)
        return 0
    from relbench.lab.run import ARMS, LabPlan, run_lab

    plan = LabPlan.smoke() if args.smoke else LabPlan()
    if args.arms:
        plan = replace(plan, arms=tuple(a.strip() for a in args.arms.split(",") if a.strip()))
    if args.steps is not None:
        if args.steps < 1:
            raise UserError(f"lab run: --steps must be at least 1, got {args.steps}")
        plan = replace(plan, steps=args.steps, eval_every=min(plan.eval_every, args.steps))
    if args.jobs is not None:
        if args.jobs < 1:
            raise UserError(f"lab run: --jobs must be at least 1, got {args.jobs}")
        plan = replace(plan, jobs=args.jobs)
    if args.hard is not None:
        plan = replace(plan, hard=args.hard)
    bad = [a for a in plan.arms if a not in ARMS]
    if bad:
        raise UserError(f"lab run: --arms: unknown arm {bad[0]!r} (known: {', '.join(ARMS)})")
    from relbench.io.locks import writer_lock

    with writer_lock(args.out, "relbench lab run"):  # arms and scores lock their own directories
        res = run_lab(args.base, args.out, plan, progress=not args.no_progress)
    print(f"lab: done in {res['timings']['total_s']:.0f} s; scores {res['scores']}; table {res['table']}; curves {res['curves']}")
    return 0
