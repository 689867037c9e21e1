"""Planning a benchmark: every check that can fail runs here, before any model loads.

A plan validates each run's and metric's arguments against the plugin's schema, probes what
the plugins need (packages, weight files), builds the cases and fixes the work to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from relbench.spec.config import Benchmark, RunSpec
from relbench.spec.data import Case, Request
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.generator import Generator, GeneratorArgs, Wanted
from relbench.spec.prompts import build_prompt, peer_prompt
from relbench.plugin.metric import Aggregate, MetricArgs
from relbench.spec.negatives import NegativeSource, build_cases
from relbench.spec.predicates import Vocabulary, load_vocabulary
from relbench.plugin.contract import check_declaration
from relbench.plugin.registry import GENERATORS, METRICS, load_plugin_modules, needs_packages


REFERENCE = "reference"


@dataclass
class Timings:
    generate_s: float = 0.0  # inside Generator.generate
    score_s: float = 0.0  # inside Metric.score
    images_generated: int = 0
    images_loaded: int = 0  # handed over by a generator of files made elsewhere (verb "loaded")
    images_reused: int = 0
    per_run: dict = field(default_factory=dict)
    #: metric -> the inputs it read in this process (none where its scores came from the cache)
    inputs_read: dict = field(default_factory=dict)
    #: score files this process wrote, taken back if a plugin breaks its contract
    written: list = field(default_factory=list)


@dataclass
class PlannedRun:
    """One run of the config: its spec, the generator class drawing it and its validated args."""

    spec: RunSpec
    cls: type
    args: GeneratorArgs


@dataclass
class PlannedMetric:
    name: str
    cls: type
    args: MetricArgs


@dataclass
class Plan:
    """Everything resolved and validated before the first file is written."""

    bench: Benchmark
    vocab: Vocabulary
    cases: list[Case]
    skipped_items: list[str]
    runs: list[PlannedRun]
    metrics: list[PlannedMetric]
    out: Path
    suite_rejected: list = field(default_factory=list)  # peers' lines that are not one triple
    #: run name -> ids of the cases its generator cannot draw (files made elsewhere, allow_missing);
    #: they are left out of every run, so runs stay paired
    left_out: dict = field(default_factory=dict)
    #: the earlier run hard and adversarial negatives were read from (negatives.confusion)
    negative_source: NegativeSource | None = None


@dataclass
class MetricInfo:
    """What results.py needs of one metric, read once from the plugin on rank 0."""

    fingerprint: str
    args: dict
    columns: list[str]
    aggregates: list[Aggregate]
    flags: list[str]
    consumes: list[str]
    fingerprint_parts: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    #: the predicate confusions its columns hold (relbench.plugin.metric.Confusion)
    confusions: list = field(default_factory=list)
    #: the work this process did (e.g. a judge's images, forward passes, questions): 0 when the
    #: scores were read from the cache, so it lives in the manifest's timings, not in summary.json
    counts: dict = field(default_factory=dict)


def _validate_args(cls, args: dict, where: str):
    from pydantic import ValidationError

    try:
        return cls.Args(**args)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown argument (allowed: {', '.join(cls.Args.model_fields) or 'none'})"
        raise UserError(f"{where}.{loc}: {msg}") from None


def _probe(registry, cls, args, ctx) -> tuple[str, list[str]]:
    """(key, columns) of a metric (("", []) for a generator), after building it once."""
    with needs_packages(registry, cls.name):
        obj = cls(args, ctx)
        try:
            obj.fingerprint()
            if registry is METRICS:
                return obj.key(), check_declaration(obj)
            return "", []
        finally:
            obj.close()


def _distinct_metrics(found: list[tuple[str, list[str]]], where) -> None:
    """Two metrics of one benchmark may not share a name in summary.json or a column: the
    second would overwrite the first's numbers."""
    keys: dict[str, int] = {}
    owner: dict[str, str] = {}
    for i, (key, columns) in enumerate(found):
        if key in keys:
            raise UserError(f"{where(i)}: metric {key!r} is listed twice (metrics.{keys[key]} and metrics.{i}); "
                            f"give one of them a distinct name (spatial: args.judge)")
        keys[key] = i
        for c in columns:
            if c in owner:
                raise UserError(f"{where(i)}: metric {key!r} writes column {c!r}, which {owner[c]!r} writes too")
            owner[c] = key


def plan(bench: Benchmark, source: str = "benchmark.yaml", lines: dict | None = None,
         check_output: bool = True, negative_source: NegativeSource | None = None) -> Plan:
    """``check_output=False``: validation only, for a caller that writes no run there.

    ``negative_source``: the run ``negatives.confusion`` names, as
    relbench.results.negative_source reads it (the engine reads no run directory)."""
    from relbench.spec.config import locate, plugin_search_path
    from relbench.engine.run_dir import check_output_dir

    out = Path(bench.output_dir)
    if check_output:
        check_output_dir(out, locate(source, lines, ("output_dir",)))
    load_plugin_modules(bench.plugins, plugin_search_path(source))
    vocab = load_vocabulary(bench.predicates)
    negative_source = checked_source(bench, vocab, negative_source, locate(source, lines, ("negatives", "confusion")))
    runs = []
    for i, spec in enumerate(bench.runs):
        cls = GENERATORS.get(spec.generator, where=f"{locate(source, lines, ('runs', i, 'generator'))}: runs.{i}.generator")
        where = f"{locate(source, lines, ('runs', i, 'args'))}: runs.{i}.args"
        runs.append(PlannedRun(spec, cls, _validate_args(cls, spec.args, where)))
    metrics = []
    for i, m in enumerate(bench.metrics):
        cls = METRICS.get(m.name, where=f"{locate(source, lines, ('metrics', i))}: metrics.{i}")
        metrics.append(PlannedMetric(m.name, cls, _validate_args(cls, m.args, f"{locate(source, lines, ('metrics', i))}: metrics.{i}.args")))

    # build each plugin once and fingerprint it: a missing checkpoint or model directory is
    # reported now, before any image is generated (plugins load weights lazily, so this is cheap)
    ctx = Context(vocab=vocab)
    for r in runs:
        _probe(GENERATORS, r.cls, r.args, ctx)
    _distinct_metrics([_probe(METRICS, m.cls, m.args, ctx) for m in metrics],
                      lambda i: f"{locate(source, lines, ('metrics', i))}: metrics.{i}")

    cases, skipped, rejected = suite_cases(bench, vocab, source, negative_source)
    p = Plan(bench, vocab, cases, skipped, runs, metrics, out, rejected, negative_source=negative_source)
    _prepare_runs(p, lambda i: f"{locate(source, lines, ('runs', i, 'args'))}: runs.{i}.args")
    return p


def checked_source(bench: Benchmark, vocab: Vocabulary, negative_source: NegativeSource | None,
                   where: str) -> NegativeSource | None:
    """The source with canonical predicate names; the caller must have read the one the config names."""
    if bench.negatives.confusion is None:
        return None
    if negative_source is None:
        raise ValueError("negatives.confusion is set: read it with relbench.results.negative_source first")
    return negative_source.checked(vocab, f"{where}: negatives.confusion: {bench.negatives.confusion}")


def suite_cases(bench: Benchmark, vocab: Vocabulary, source: str,
                negative_source: NegativeSource | None = None) -> tuple[list[Case], list[str], list]:
    """(cases, ids of items with no applicable negative, suite lines rejected): the part of the
    plan that needs no plugin (`relbench export` asks for these cases' images)."""
    from relbench.suites.loader import load_suite

    items, rejected = load_suite(bench.suite, vocab, bench.limit)
    if bench.sample is not None:
        from relbench.suites.sample import sample_items

        items = sample_items(items, bench.sample, bench.sample_seed)
    cases, skipped = build_cases(
        items, list(bench.seeds), list(bench.negatives.kinds), vocab,
        bench.negatives.per_item, bench.negatives.seed, negative_source, bench.negatives.top_k,
    )
    if not cases:
        raise UserError(f"{source}: suite: no cases (no item has an applicable negative of kinds {bench.negatives.kinds})")
    return cases, skipped, rejected


def _prepares(cls) -> bool:
    return cls.prepare is not Generator.prepare


def _prepare_runs(p: Plan, where) -> None:
    """Let generators of files made elsewhere check every file now, before any model loads,
    and drop the cases they leave out (allow_missing)."""
    ctx = Context(vocab=p.vocab)
    for i, r in enumerate(p.runs):
        if not _prepares(r.cls):
            continue
        with needs_packages(GENERATORS, r.cls.name):
            gen = r.cls(r.args, ctx)
            try:
                left = gen.prepare(wanted(p, r.spec))
            except UserError as exc:  # its message starts with the argument it is about
                raise UserError(f"{where(i)}.{exc}") from None
            finally:
                gen.close()
        if left:
            left = set(left)
            p.left_out[r.spec.name] = [c.id for c in p.cases if c.id in left]
    drop = {c for ids in p.left_out.values() for c in ids}
    if drop:
        p.cases = [c for c in p.cases if c.id not in drop]
        if not p.cases:
            first = next(i for i, r in enumerate(p.runs) if r.spec.name in p.left_out)
            raise UserError(f"{where(first)}.allow_missing: every case was left out ({', '.join(p.left_out)} "
                            f"has no usable image pair); nothing to score")


#: samples.csv's prompt_source: who wrote the prompts a generator was given
PEER, RELBENCH = "peer", "relbench"


def _peer_prompts(plan: Plan, case: Case) -> tuple[str, str] | None:
    """The peer's prompt of g+ and g- written its way (relbench.spec.prompts.peer_prompt), or
    None: the suite has no prompt of its own, or its grammar cannot state this g-."""
    if case.prompt is None:
        return None
    neg = peer_prompt(case.prompt, case.pos, case.neg, case.changed_triple, plan.vocab)
    return None if neg is None else (case.prompt.text, neg)


def prompt_source(plan: Plan, case: Case, mode: str) -> str:
    """PEER where generators of prompt ``mode`` are given the peer's own prompts, else RELBENCH.
    A pair is never mixed: where g- cannot be written the peer's way, both are relbench's."""
    return PEER if mode == "relation" and _peer_prompts(plan, case) is not None else RELBENCH


def _prompts(plan: Plan, case: Case, mode: str) -> tuple[str, str]:
    """(prompt for img_pos, prompt for img_neg) as generators get them. In relation mode a peer
    suite's own prompts (``prompt_source``); in neutral mode both images get the same text,
    named from g+ ("a photo of a dog and a horse"), so only the graph can tell them apart."""
    if mode == "relation" and (peer := _peer_prompts(plan, case)) is not None:
        return peer
    return relation_texts(plan, case) if mode == "relation" else (build_prompt(case.pos, mode, plan.vocab),) * 2


def relation_texts(plan: Plan, case: Case) -> tuple[str, str]:
    """The relation texts of g+ and g-, built from the graphs: what judges judge, whoever wrote
    the generators' prompts."""
    return build_prompt(case.pos, "relation", plan.vocab), build_prompt(case.neg, "relation", plan.vocab)


def wanted(plan: Plan, spec: RunSpec) -> list[Wanted]:
    """Every image one run asks for, case by case (g+ then g-), with the requests
    ``request_keys`` makes."""
    size, seeds, out = plan.bench.size, list(plan.bench.seeds), []
    for case in plan.cases:
        pp, pn = _prompts(plan, case, spec.prompt_mode)
        k = seeds.index(case.seed)
        out += [Wanted(Request(pp, case.pos, case.noise_seed, size), case.id, "pos", k),
                Wanted(Request(pn, case.neg, case.noise_seed, size), case.id, "neg", k)]
    return out
