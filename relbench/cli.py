"""The `relbench` command. Imports stay inside commands so `relbench --help` is instant."""

from __future__ import annotations

import argparse
import errno
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
    run.add_argument("--generator", metavar="NAME",
                     help="evaluate only this generator: the config's runs of it, with their args (else one new run)")
    run.add_argument("--ckpt", metavar="PATH", help="checkpoint for --generator (its 'ckpt' argument): a checkpoint "
                     "directory or a training --output-dir (its best/, else last/)")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                     help="generator argument for the runs (of --generator, else all); VALUE is YAML; repeatable")
    run.add_argument("--prompt-mode", choices=["relation", "neutral"], help="prompt mode for every run")
    subset = run.add_mutually_exclusive_group()
    subset.add_argument("--limit", type=int, metavar="N", help="only the first N suite items (all their seeds)")
    subset.add_argument("--sample", type=int, metavar="N",
                     help="N suite items drawn at random in proportion to each predicate's share (replaces limit)")
    run.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds to draw each case with")
    run.add_argument("--out", metavar="DIR", help="output directory (overrides output_dir)")
    run.add_argument("--batch-size", type=int, metavar="N", help="generator batch size")
    run.add_argument("--metrics", metavar="A,B", help="comma-separated metric names (replaces the config's)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars, nor the plain progress lines written when stderr is not a terminal")
    run.add_argument("--dry-run", action="store_true",
                     help="only say, per run, how many images and score chunks would be made and reused, and "
                          "what changed in each changed fingerprint; writes nothing")
    # --- reports ---
    run.add_argument("--no-report", action="store_true", help="do not write report.html in the run directory")
    _add_report_commands(sub)
    # --- end reports ---

    lst = sub.add_parser("list", help="list generators and metrics (unavailable ones with the reason)")
    lst.add_argument("--config", metavar="FILE", help="also list the plugins this benchmark YAML names (plugins:)")

    data = sub.add_parser("data", help="build suites from datasets (Visual Genome)")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    vg = data_sub.add_parser("vg", help="balanced relation splits (JSONL) from Visual Genome's own files")
    from relbench.vg.command import add_vg_arguments

    add_vg_arguments(vg)
    add_train_parser(sub)
    from relbench.export import add_export_parser

    add_export_parser(sub)
    from relbench.annotate.command import add_annotate_parser

    add_annotate_parser(sub)

    from relbench.lab.cli import add_lab_parser  # argparse only: no torch at import

    add_lab_parser(sub)
    return p


# --- reports and comparisons (the baseline section included) --------------------------------

def _add_report_commands(sub) -> None:
    rep = sub.add_parser("report", help="build one offline HTML report for one or more run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("-o", "--output", metavar="FILE", help="HTML file to write (default: RUN_DIR/report.html)")
    rep.add_argument("--baseline", action="append", metavar="NAME",
                     help="pinned baseline record(s) to compare with (default: those the benchmark declares "
                          "comparable_with)")
    cmp_ = sub.add_parser("compare", help="compare runs with each other and with a pinned baseline record")
    cmp_.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    cmp_.add_argument("--baseline", metavar="NAME", help="a pinned record, e.g. seed-20ep (default: the one the "
                      "benchmark declares comparable_with, else none; see docs/reports.md)")
    cmp_.add_argument("--require-better", metavar="KEY",
                      help="exit 1 unless every run beats the baseline on KEY (one-sided p < 0.05)")
    cmp_.add_argument("-o", "--output", metavar="PREFIX",
                      help="write PREFIX.csv and PREFIX.json (default: compare-DIRS beside the run directories)")


def cmd_report(args) -> int:
    from pathlib import Path

    from relbench.reports import build_report
    from relbench.reports.curves import build_curves, training_dirs

    if all(training_dirs(d) for d in args.run_dirs):  # training / lab output directories: curves
        out = Path(args.output) if args.output else Path(args.run_dirs[0]) / "curves.html"
        info = build_curves(args.run_dirs, out)
        print(f"report: {out} ({info['bytes'] / 1e6:.2f} MB, {info['seconds']:.1f}s)")
        return 0
    out = Path(args.output) if args.output else Path(args.run_dirs[0]) / "report.html"
    info = build_report(args.run_dirs, out, baselines=args.baseline)
    print(f"report: {out} ({info['bytes'] / 1e6:.2f} MB, {info['seconds']:.1f}s)")
    return 0


def cmd_compare(args) -> int:
    from pathlib import Path

    from relbench.compare import (
        check_gate_key, compare, declared_baselines, default_output_prefix, format_comparison, gate, load_run_dir,
        write_outputs,
    )

    dirs = [load_run_dir(d) for d in args.run_dirs]
    # a record only when asked for, or when the benchmark declares itself comparable with it
    baseline = args.baseline or next(iter(declared_baselines(dirs)), None)
    result = compare(dirs, baseline=baseline)
    human = {str(d.path): d.summary["human"] for d in dirs if d.summary.get("human")}
    if args.require_better:
        check_gate_key(result, args.require_better)
        result["gate"] = gate(result, args.require_better)
    print(format_comparison(result))
    if human:
        from relbench.human import format_human

        result["human"] = human
        for path, section in human.items():
            print(f"{path}:\n{format_human(section)}")
    prefix = Path(args.output) if args.output else default_output_prefix(args.run_dirs)
    csv_path, json_path = write_outputs(result, prefix)
    print(f"written: {csv_path}, {json_path}")
    if args.require_better:
        failed = [g for g in result["gate"] if not g["better"]]
        for g in result["gate"]:
            verdict = "better" if g["better"] else "NOT better"
            p = "undefined (no standard error)" if g["p_value"] is None else f"{g['p_value']:.3g}"
            print(f"gate: {g['run']} {verdict} than {baseline} on {g['key']} "
                  f"(difference {g['difference']:+.4g}, one-sided p = {p}, need < {g['alpha']})")
        return 1 if failed else 0
    return 0


def _write_run_report(args, out) -> None:
    """`relbench run` ends with report.html beside summary.json (skipped with --no-report)."""
    if getattr(args, "no_report", False):
        return
    import hashlib
    import json
    from pathlib import Path

    import relbench.reports as reports
    from relbench.code_identity import module_identity

    # a rerun that changed no result keeps the report it has (building one imports matplotlib and
    # scipy: ~1.7 s, which would be most of a rerun); the manifest shown is the building run's.
    # The key covers the report's code as plugin fingerprints do: its modules and the relbench
    # modules they import (the number formatter lives in relbench.results), library versions,
    # and the templates.
    digest = hashlib.sha256(json.dumps(module_identity("relbench.reports")).encode())
    templates = sorted((Path(reports.__file__).parent / "templates").glob("*.j2"))
    from relbench.annotate.storage import HUMAN_DIR

    answers = sorted((out / HUMAN_DIR).glob("*.jsonl"))
    for f in [out / "summary.json", out / "samples.csv"] + templates + answers:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    marker = out / "cache" / f"report-{digest.hexdigest()[:32]}"
    report = out / "report.html"
    if marker.is_file() and report.is_file():
        print(f"report: {report} (results unchanged, kept)")
        return
    info = reports.build_report([out], report)
    from relbench.atomic import write_text

    write_text(marker, "")
    print(f"report: {report} ({info['bytes'] / 1e6:.2f} MB)")

# --- end reports and comparisons ---------------------------------------------------------------


class UsageError(Exception):
    """A flag combination argparse cannot check: shown as argparse's usage error (exit 2)."""


def _parse_arg(text: str) -> tuple[str, object]:
    """'key=value' with a YAML value (8 -> int, true -> bool, [1, 2] -> list, text -> str)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--arg {text!r}: expected KEY=VALUE, e.g. --arg steps=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _runs_override(data: dict, args) -> list | None:
    """The runs after --generator / --ckpt / --arg, or None when the config's runs stand."""
    cli_args = dict(_parse_arg(a) for a in args.arg)
    if args.ckpt:
        if not args.generator:
            raise UsageError("--ckpt needs --generator NAME")
        cli_args["ckpt"] = _checkpoint_path(args.ckpt)
    if not args.generator and not cli_args:
        return None
    runs = [dict(r) for r in data.get("runs") or [] if isinstance(r, dict)]
    if args.generator:
        runs = [r for r in runs if r.get("generator") == args.generator] or [
            {"name": args.generator + ("-neutral" if args.prompt_mode == "neutral" else ""), "generator": args.generator}]
    for r in runs:
        r["args"] = {**(r.get("args") or {}), **cli_args}
    _check_cli_args(runs, cli_args)
    return runs


def _checkpoint_path(path: str) -> str:
    from relbench.models.graph_lora_ckpt import resolve_checkpoint_dir

    return str(resolve_checkpoint_dir(path, say=lambda msg: print(msg, file=sys.stderr)))


def _check_cli_args(runs: list, cli_args: dict) -> None:
    """--arg values validated like the config's args, the error naming the flag."""
    from pydantic import ValidationError

    from relbench.errors import UserError
    from relbench.registry import GENERATORS

    for r in runs:
        try:
            cls = GENERATORS.get(str(r.get("generator")))
        except UserError:  # a plugin's generator (imported by plan) or a typo: plan says which line
            continue
        try:
            cls.Args(**r["args"])
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                if key in cli_args:
                    msg = err["msg"]
                    if err["type"] == "extra_forbidden":
                        msg = f"unknown argument of {r['generator']} (allowed: {', '.join(cls.Args.model_fields) or 'none'})"
                    flag = "--ckpt" if key == "ckpt" else f"--arg {key}"
                    raise UserError(f"{flag}: {msg}") from None


def _overrides(args, data: dict) -> dict:
    o: dict = {}
    runs = _runs_override(data, args)
    if runs is not None:
        o["runs"] = runs
    for key, val in (("limit", args.limit), ("seeds", args.seeds), ("output_dir", args.out), ("batch_size", args.batch_size)):
        if val is not None:
            o[key] = val
    if args.sample is not None:  # a flag's subset replaces the config's other kind
        o["sample"], o["limit"] = args.sample, None
    elif args.limit is not None:
        o["sample"] = None
    if args.metrics is not None:
        o["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
        if not o["metrics"]:
            from relbench.errors import UserError

            raise UserError(f"--metrics {args.metrics!r}: no metric named (give one or more names, e.g. "
                            "--metrics pair_mse,clip_alignment; `relbench list` shows them)")
    return o


def cmd_run(args) -> int:
    from relbench.config import default_benchmark_path, parse_benchmark, read_benchmark_file
    from relbench.runner import plan

    path = args.config or str(default_benchmark_path())
    data, lines = read_benchmark_file(path)
    overrides = _overrides(args, data)
    data.update(overrides)
    # overridden keys come from the command line, not from a line of the file
    lines = {k: v for k, v in lines.items() if not (k and k[0] in overrides)}
    if args.prompt_mode:
        for r in data.get("runs") or []:
            if isinstance(r, dict):
                r["prompt_mode"] = args.prompt_mode
    bench = parse_benchmark(data, path, lines)
    p = plan(bench, source=path, lines=lines)
    if args.dry_run:  # writes nothing, so it takes no lock
        from relbench.dry_run import dry_run

        print("\n".join(dry_run(p)))
        return 0
    from relbench.locks import main_process, writer_lock

    with writer_lock(p.out, "relbench run", enabled=main_process()):
        return _run_planned(args, bench, p)


def _image_counts(t) -> str:
    """'18 images generated, 0 reused'; files made elsewhere are said to be loaded, not generated."""
    parts = [f"{t.images_generated} images generated"] if t.images_generated or not t.images_loaded else []
    if t.images_loaded:
        parts.append(f"{t.images_loaded} {'' if parts else 'images '}loaded from files")
    return ", ".join(parts + [f"{t.images_reused} reused"])


def _run_planned(args, bench, p) -> int:
    from relbench.results import format_table, write_results
    from relbench.runner import execute

    collected = execute(p, show_progress=not args.no_progress)
    if collected is None:  # a non-zero rank under accelerate/torchrun
        return 0
    summary = write_results(p, collected, argv=sys.argv[1:])
    t = collected.timings
    print(f"{bench.name}: {len(p.cases)} cases ({summary['n_triples']} triples x {len(bench.seeds)} seeds), "
          f"{len(bench.runs)} run(s); {_image_counts(t)}; {collected.wall_s:.1f}s")
    if p.skipped_items:
        print(f"note: {len(p.skipped_items)} suite item(s) had no applicable negative and were left out "
              f"(listed in manifest.json)")
    for run, ids in p.left_out.items():
        print(f"note: {len(ids)} case(s) left out of every run: {run} has no usable image for them "
              f"(allow_missing: true; listed in summary.json and manifest.json under cases_left_out)")
    if p.suite_rejected:
        from relbench.suites.peers import rejected_summary

        reasons = "; ".join(f"{n} {r}" for r, n in rejected_summary(p.suite_rejected)["by_reason"].items())
        print(f"note: {len(p.suite_rejected)} line(s) of the {bench.suite.kind} file are not one triple and were left "
              f"out ({reasons}; listed in manifest.json under suite_lines_rejected)")
    print(format_table(summary))
    from relbench.agreement import format_agreement

    if agreement_lines := format_agreement(summary):
        print(agreement_lines)
    print(f"results: {p.out}/summary.json, {p.out}/samples.csv, {p.out}/manifest.json")
    _write_run_report(args, p.out)
    return 0


def cmd_list(args) -> int:
    from relbench.errors import UserError
    from relbench.registry import GENERATORS, METRICS, load_plugin_modules, summary_line

    if args.config:
        from relbench.config import plugin_search_path, read_benchmark_file

        data, _ = read_benchmark_file(args.config)
        plugins = data.get("plugins") or []
        if not (isinstance(plugins, list) and all(isinstance(m, str) for m in plugins)):
            raise UserError(f"{args.config}: plugins: must be a list of module names")
        load_plugin_modules(plugins, plugin_search_path(args.config))
    for title, reg in (("generators", GENERATORS), ("metrics", METRICS)):
        print(f"{title}:")
        rows = reg.status()
        width = max((len(name) for name, *_ in rows), default=0)
        for name, entry, cls, why in rows:
            text = summary_line(cls) if cls is not None else f"UNAVAILABLE: {why}"
            origin = "" if entry.origin == "built-in" else f"  [{entry.origin}]"
            print(f"  {name.ljust(width)}  {text}{origin}")
    return 0


def cmd_export(args) -> int:
    from relbench.export import export_command

    return export_command(args)


def cmd_annotate(args) -> int:
    from relbench.annotate.command import annotate_command

    return annotate_command(args)


def cmd_data(args) -> int:
    from relbench.vg.command import vg_command

    return vg_command(args)


# ---------------------------------------------------------------------------- train


def add_train_parser(sub) -> None:
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
    from relbench.trainers._train_config import load_train_config

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


def cmd_lab(args) -> int:
    from relbench.lab.cli import cmd_lab as run_lab_command

    return run_lab_command(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "train": cmd_train,
            "report": cmd_report, "compare": cmd_compare,
            "annotate": cmd_annotate, "lab": cmd_lab, "export": cmd_export}


# a full disk, a quota, a read-only or unwritable output: the environment, not a bug
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


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
    except OSError as exc:  # a write outside relbench.atomic (a directory made, a log appended)
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        from relbench.atomic import describe

        where = f" {exc.filename}" if exc.filename else ""  # a failed write() names no file
        print(f"relbench: error: cannot write{where}: {describe(exc)}; free space or make the directory "
              f"writable, then run the same command again to resume", file=sys.stderr)
        return 2
    except UsageError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print("relbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
