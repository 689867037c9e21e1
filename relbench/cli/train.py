"""`relbench train`: flux_graph_lora's trainer from a YAML, flags overriding it.
"""

from __future__ import annotations



def add_parser(sub) -> None:
    """`relbench train`: flags mirror the seed's train_flux_graph_lora_diffusion.py."""
    t = sub.add_parser("train", help="train flux_graph_lora's graph encoder, injector and LoRA (docs/train.md)")
    t.add_argument("--config", metavar="FILE", help="training YAML (see examples/train.yaml); flags override it")
    t.add_argument("--train-jsonl", metavar="FILE", help="training split (relbench JSONL suite schema)")
    t.add_argument("--val-jsonl", metavar="FILE", help="validation split, evaluated through the harness")
    t.add_argument("--output-dir", metavar="DIR", help="checkpoints (last/, best/), train_log.jsonl, eval/")
    t.add_argument("--epochs", type=int, metavar="N")
    t.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in all")
    t.add_argument("--batch-size", type=int, metavar="N", help="per process")
    t.add_argument("--lora-rank", type=int, metavar="R", help="lora.rank (alpha stays as configured)")
    t.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:3 (single process)")
    t.add_argument("--resume", action="store_true", help="continue exactly from <output-dir>/last")
    t.add_argument("--stop-after", type=int, metavar="STEP",
                   help="checkpoint and stop after this step, as if interrupted (for time-limited jobs)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_train(args) -> int:
    from relbench.trainers.flux_graph_lora.config import load_train_config

    flags = {"train_jsonl": args.train_jsonl, "val_jsonl": args.val_jsonl, "output_dir": args.output_dir,
             "epochs": args.epochs, "max_steps": args.max_steps, "batch_size": args.batch_size,
             "lora.rank": args.lora_rank, "device": args.device}
    if args.no_progress:
        flags["progress"] = False
    cfg, source = load_train_config(args.config, {k: v for k, v in flags.items() if v is not None})
    from relbench.trainers.flux_graph_lora import train

    res = train(cfg, source=source, resume=args.resume, stop_after=args.stop_after)
    if res.get("is_main", True):
        best = res["best"]
        print(f"trained {res['step']}/{res['total_steps']} steps; checkpoint {res['last']}"
              + (f"; best {best['metric']}={best['value']:.4g} at step {best['step']} ({cfg.output_dir}/best)" if best else "")
              + f"; log {res['log']}")
        if res["stopped"]:
            print(res["stopped"])
    return 0
