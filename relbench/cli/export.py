"""`relbench export`: the images a benchmark asks for, for a generator relbench cannot run
(docs/generators.md). It writes only DIR/requests.jsonl and DIR/prompts.txt."""

from __future__ import annotations

from pathlib import Path

from relbench.engine.export import PROMPTS, REQUESTS, USES, export, parse_uses


def add_parser(sub) -> None:
    e = sub.add_parser("export", help="write the images a benchmark asks for (requests.jsonl, prompts.txt), to draw "
                       "with another tool and score with the `images` generator")
    e.add_argument("--config", metavar="FILE", help="benchmark YAML (default: ./benchmark.yaml, else the shipped default)")
    e.add_argument("--out", metavar="DIR", required=True, help="folder to write (empty, missing, or an earlier export)")
    e.add_argument("--uses", default="prompt", metavar="FIELDS",
                   help="what the external generator reads: prompt (default: g+ and g- with one prompt are one "
                        "image) or prompt,graph (a graph-conditioned generator)")


def export_command(args) -> int:
    from relbench.spec.config import default_benchmark_path, locate, parse_benchmark, plugin_search_path, read_benchmark_file
    from relbench.spec.predicates import load_vocabulary
    from relbench.plugin.registry import load_plugin_modules
    from relbench.engine.plan import Plan, PlannedRun, checked_source, suite_cases
    from relbench.results.negative_source import read_for

    uses = parse_uses(args.uses)
    path = args.config or str(default_benchmark_path())
    data, lines = read_benchmark_file(path)
    bench = parse_benchmark(data, path, lines)
    negative_source = read_for(bench, path, lines)
    load_plugin_modules(bench.plugins, plugin_search_path(path))  # a plugin may declare predicates or suites
    vocab = load_vocabulary(bench.predicates)
    negative_source = checked_source(bench, vocab, negative_source, locate(path, lines, ("negatives", "confusion")))
    cases, skipped, rejected = suite_cases(bench, vocab, path, negative_source)
    out = Path(args.out)
    # the runs' generators are not built: only their prompt modes matter to what is drawn
    plan = Plan(bench, vocab, cases, skipped, [PlannedRun(s, None, None) for s in bench.runs], [], out, rejected,
                negative_source=negative_source)
    done = export(plan, out, uses)
    print(f"export: {out / REQUESTS}: {done['images']} images for {done['cases']} cases (deduplicated by "
          f"{','.join(sorted(uses, key=USES.index))}); {done['prompts']} distinct prompts in {out / PROMPTS}")
    print(f"next: save each line's image as {out}/<file>, then score the folder with a run "
          f"{{name: my-model, generator: images, args: {{dir: {out}}}}}")
    return 0
