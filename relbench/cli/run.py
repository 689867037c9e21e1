"""`relbench run`: plan (every check, before any model loads), draw, score, write the run
directory and its report.
"""

from __future__ import annotations

from relbench.errors import UsageError

import argparse
import sys


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def _write_run_report(args, out) -> None:
    """`relbench run` ends with report.html beside summary.json (skipped with --no-report)."""
    if getattr(args, "no_report", False):
        return
    import hashlib
    import json
    from pathlib import Path

    import relbench.reports as reports
    from relbench.io.code_identity import module_identity

    # a rerun that changed no result keeps the report it has (building one imports matplotlib and
    # scipy: ~1.7 s, which would be most of a rerun); the manifest shown is the building run's.
    # The key covers the report's code as plugin fingerprints do: its modules and the relbench
    # modules they import (the number formatter lives in relbench.results.write), library versions,
    # and the templates.
    digest = hashlib.sha256(json.dumps(module_identity("relbench.reports")).encode())
    templates = sorted((Path(reports.__file__).parent / "templates").glob("*.j2"))
    from relbench.results.answers import HUMAN_DIR

    answers = sorted((out / HUMAN_DIR).glob("*.jsonl"))
    for f in [out / "summary.json", out / "samples.csv"] + templates + answers:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    marker = out / "cache" / f"report-{digest.hexdigest()[:32]}"
    report = out / "report.html"
    if marker.is_file() and report.is_file():
        print(f"report: {report} (results unchanged, kept)")
        return
    info = reports.build_report([out], report)
    from relbench.io.atomic import write_text

    write_text(marker, "")
    print(f"report: {report} ({info['bytes'] / 1e6:.2f} MB)")


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
    from relbench.plugin.registry import GENERATORS

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


def _suite_override(text: str) -> dict:
    """--suite KIND=PATH as the config's suite mapping (checked against the config schema by plan)."""
    kind, sep, path = text.partition("=")
    kind = kind.strip()
    if not sep or not kind or not path.strip():
        raise UsageError(f"--suite {text!r}: expected KIND=PATH, e.g. --suite geneval2=geneval2_data.jsonl")
    from relbench.spec.config import FILE_SUITE_KINDS

    if kind not in FILE_SUITE_KINDS:
        from relbench.errors import UserError

        raise UserError(f"--suite {text!r}: unknown suite kind {kind!r} (allowed: {', '.join(FILE_SUITE_KINDS)})")
    return {"kind": kind, "path": path.strip()}


def _overrides(args, data: dict) -> dict:
    o: dict = {}
    if args.suite is not None:
        o["suite"] = _suite_override(args.suite)
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
    from relbench.spec.config import default_benchmark_path, parse_benchmark, read_benchmark_file
    from relbench.engine.plan import plan

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
    from relbench.results.negative_source import read_for

    p = plan(bench, source=path, lines=lines, negative_source=read_for(bench, path, lines))
    if args.dry_run:  # writes nothing, so it takes no lock
        from relbench.engine.dry_run import dry_run

        print("\n".join(dry_run(p)))
        return 0
    from relbench.io.locks import main_process, writer_lock

    with writer_lock(p.out, "relbench run", enabled=main_process()):
        return _run_planned(args, bench, p)


def _image_counts(t) -> str:
    """'18 images generated, 0 reused'; files made elsewhere are said to be loaded, not generated."""
    parts = [f"{t.images_generated} images generated"] if t.images_generated or not t.images_loaded else []
    if t.images_loaded:
        parts.append(f"{t.images_loaded} {'' if parts else 'images '}loaded from files")
    return ", ".join(parts + [f"{t.images_reused} reused"])


def _run_planned(args, bench, p) -> int:
    from relbench.results.format import format_table
    from relbench.results.write import write_results
    from relbench.engine.execute import execute

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
    from relbench.results.format import format_agreement

    if agreement_lines := format_agreement(summary):
        print(agreement_lines)
    print(f"results: {p.out}/summary.json, {p.out}/samples.csv, {p.out}/manifest.json")
    _write_run_report(args, p.out)
    return 0


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="generate and score a benchmark (default: ./benchmark.yaml)")
    run.add_argument("--config", metavar="FILE", help="benchmark YAML (default: ./benchmark.yaml, else the shipped default)")
    run.add_argument("--generator", metavar="NAME",
                     help="evaluate only this generator: the config's runs of it, with their args (else one new run)")
    run.add_argument("--ckpt", metavar="PATH", help="checkpoint for --generator (its 'ckpt' argument): a checkpoint "
                     "directory or a training --output-dir (its best/, else last/)")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                     help="generator argument for the runs (of --generator, else all); VALUE is YAML; repeatable")
    run.add_argument("--prompt-mode", choices=["relation", "neutral"], help="prompt mode for every run")
    run.add_argument("--suite", metavar="KIND=PATH",
                     help="evaluate on this suite file instead of the config's suite, e.g. geneval2=geneval2_data.jsonl "
                          "(KIND: a peer's, geneval / geneval2 / t2i_compbench / visor, or jsonl); the config's runs "
                          "and metrics stand")
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
    run.add_argument("--no-report", action="store_true", help="do not write report.html in the run directory")

