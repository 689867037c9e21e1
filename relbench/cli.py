"""The `relbench` command. Imports stay inside commands so `relbench --help` is instant."""

from __future__ import annotations

import argparse
import sys


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relbench",
        description="Evaluation-first benchmark for relation-conditioned image generation.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="generate and score a benchmark (default: ./benchmark.yaml)")
    run.add_argument("--config", metavar="FILE", help="benchmark YAML (default: ./benchmark.yaml, else the shipped default)")
    run.add_argument("--generator", metavar="NAME", help="evaluate only this generator (replaces the config's runs)")
    run.add_argument("--ckpt", metavar="PATH", help="checkpoint for --generator (its 'ckpt' argument)")
    run.add_argument("--prompt-mode", choices=["relation", "neutral"], help="prompt mode for every run")
    run.add_argument("--limit", type=int, metavar="N", help="only the first N suite items (all their seeds)")
    run.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds to draw each case with")
    run.add_argument("--out", metavar="DIR", help="output directory (overrides output_dir)")
    run.add_argument("--batch-size", type=int, metavar="N", help="generator batch size")
    run.add_argument("--metrics", metavar="A,B", help="comma-separated metric names (replaces the config's)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    sub.add_parser("list", help="list available generators and metrics")

    data = sub.add_parser("data", help="build suites from datasets (Visual Genome)")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    vg = data_sub.add_parser("vg", help="balanced relation splits (JSONL) from Visual Genome's own files")
    from relbench.vg.command import add_vg_arguments

    add_vg_arguments(vg)
    return p


def _overrides(args) -> dict:
    o: dict = {}
    if args.generator:
        name = args.generator + ("-neutral" if args.prompt_mode == "neutral" else "")
        run = {"name": name, "generator": args.generator}
        if args.ckpt:
            run["args"] = {"ckpt": args.ckpt}
        o["runs"] = [run]
    elif args.ckpt:
        raise _usage("--ckpt needs --generator NAME")
    for key, val in (("limit", args.limit), ("seeds", args.seeds), ("output_dir", args.out), ("batch_size", args.batch_size)):
        if val is not None:
            o[key] = val
    if args.metrics:
        o["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
    return o


class _usage(Exception):
    pass


def cmd_run(args) -> int:
    from relbench.config import default_benchmark_path, parse_benchmark, read_benchmark_file
    from relbench.results import format_table, write_results
    from relbench.runner import execute, plan

    path = args.config or str(default_benchmark_path())
    data, lines = read_benchmark_file(path)
    overrides = _overrides(args)
    data.update(overrides)
    # overridden keys come from the command line, not from a line of the file
    lines = {k: v for k, v in lines.items() if not (k and k[0] in overrides)}
    if args.prompt_mode:
        for r in data.get("runs") or []:
            if isinstance(r, dict):
                r["prompt_mode"] = args.prompt_mode
    bench = parse_benchmark(data, path, lines)
    p = plan(bench, source=path, lines=lines)
    collected = execute(p, show_progress=not args.no_progress and sys.stderr.isatty())
    if collected is None:  # a non-zero rank under accelerate/torchrun
        return 0
    summary = write_results(p, collected, argv=sys.argv[1:])
    t = collected["timings"]
    print(f"{bench.name}: {len(p.cases)} cases ({summary['n_triples']} triples x {len(bench.seeds)} seeds), "
          f"{len(bench.runs)} run(s); {t.images_generated} images generated, {t.images_reused} reused; "
          f"{collected['wall_s']:.1f}s")
    if p.skipped_items:
        print(f"note: {len(p.skipped_items)} suite item(s) had no applicable negative and were left out "
              f"(listed in manifest.json)")
    print(format_table(summary))
    print(f"results: {p.out}/summary.json, {p.out}/samples.csv, {p.out}/manifest.json")
    return 0


def cmd_list(args) -> int:
    from relbench.registry import GENERATORS, METRICS, summary_line

    for title, reg in (("generators", GENERATORS), ("metrics", METRICS)):
        print(f"{title}:")
        items = reg.items()
        width = max((len(n) for n, _ in items), default=0)
        for name, cls in items:
            print(f"  {name.ljust(width)}  {summary_line(cls)}")
    return 0


def cmd_data(args) -> int:
    from relbench.vg.command import vg_command

    return vg_command(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from relbench.errors import UserError

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"relbench: error: {exc}", file=sys.stderr)
        return 2
    except _usage as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print("relbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
