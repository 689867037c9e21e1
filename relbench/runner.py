"""The runner: cases x runs -> images in the store -> per-sample scores -> results.

Work is cut into fixed chunks of cases (independent of the number of processes), so a run
killed at any point, or resumed with another process count, redoes at most the chunk in
flight: images are stored one by one as they are made, and each (metric, chunk) score file
is written atomically and keyed by the content it scored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from relbench.config import Benchmark, RunSpec
from relbench.data import Case, Request, stable_hash
from relbench.distributed import Topology, topology
from relbench.errors import UserError
from relbench.generator import Context, Generator, GeneratorArgs, Wanted
from relbench.metric import Aggregate, MetricArgs, Sample, metric_view
from relbench.negatives import build_cases
from relbench.progress import Progress, bars_wanted
from relbench.predicates import Vocabulary, load_vocabulary
from relbench.prompts import build_prompt
from relbench.contract import ContractError, check_declaration, check_images, check_rows
from relbench.registry import GENERATORS, METRICS, load_plugin_modules, needs_packages
from relbench.store import ImageStore

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
    #: the work this process did (e.g. a judge's images, forward passes, questions): 0 when the
    #: scores were read from the cache, so it lives in the manifest's timings, not in summary.json
    counts: dict = field(default_factory=dict)


@dataclass
class RunResult:
    """What ``execute`` hands to results.py: the images of every run and their scores."""

    runs: list[RunImages]
    scores: dict[str, dict[str, dict]]  # run -> case id -> column -> value
    metrics: dict[str, MetricInfo]
    timings: Timings
    wall_s: float
    topology: Topology


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


def _probe(registry, cls, args, ctx) -> None:
    with needs_packages(registry, cls.name):
        obj = cls(args, ctx)
        try:
            obj.fingerprint()
            if registry is METRICS:
                check_declaration(obj)
        finally:
            obj.close()


def plan(bench: Benchmark, source: str = "benchmark.yaml", lines: dict | None = None,
         check_output: bool = True) -> Plan:
    """``check_output=False``: validation only, for a caller that writes no run there."""
    from relbench.config import locate, plugin_search_path
    from relbench.run_dir import check_output_dir

    out = Path(bench.output_dir)
    if check_output:
        check_output_dir(out, locate(source, lines, ("output_dir",)))
    load_plugin_modules(bench.plugins, plugin_search_path(source))
    vocab = load_vocabulary(bench.predicates)
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
    for m in metrics:
        _probe(METRICS, m.cls, m.args, ctx)

    cases, skipped, rejected = suite_cases(bench, vocab, source)
    p = Plan(bench, vocab, cases, skipped, runs, metrics, out, rejected)
    _prepare_runs(p, lambda i: f"{locate(source, lines, ('runs', i, 'args'))}: runs.{i}.args")
    return p


def suite_cases(bench: Benchmark, vocab: Vocabulary, source: str) -> tuple[list[Case], list[str], list]:
    """(cases, ids of items with no applicable negative, suite lines rejected): the part of the
    plan that needs no plugin (`relbench export` asks for these cases' images)."""
    from relbench.suites.loader import load_suite

    items, rejected = load_suite(bench.suite, vocab, bench.limit)
    if bench.sample is not None:
        from relbench.suites.sample import sample_items

        items = sample_items(items, bench.sample, bench.sample_seed)
    cases, skipped = build_cases(
        items, list(bench.seeds), list(bench.negatives.kinds), vocab,
        bench.negatives.per_item, bench.negatives.seed,
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


def _chunks(cases: list[Case], size: int) -> list[list[Case]]:
    return [cases[i : i + size] for i in range(0, len(cases), size)]


def _prompts(plan: Plan, case: Case, mode: str) -> tuple[str, str]:
    """(prompt for img_pos, prompt for img_neg). In neutral mode both images get the same text,
    named from g+ ("a photo of a dog and a horse"), so only the graph can tell them apart."""
    if mode == "neutral":
        text = build_prompt(case.pos, mode, plan.vocab)
        return text, text
    return build_prompt(case.pos, mode, plan.vocab), build_prompt(case.neg, mode, plan.vocab)


@dataclass
class RunImages:
    """Per case: the prompts and image keys one run produced (or the references)."""

    name: str
    prompts: dict[str, tuple[str, str]]
    keys: dict[str, tuple[str | None, str | None]]
    info: dict
    #: image key -> sha256 of the file, for keys that name a file outside the store (photos):
    #: score caches key on what a photo holds, not where it lies
    content: dict[str, str] = field(default_factory=dict)


def generate_run(plan: Plan, spec: RunSpec, cls, args, store: ImageStore, topo: Topology, timings: Timings,
                 show_progress: bool) -> RunImages:
    ctx = Context(vocab=plan.vocab, rank=topo.rank, world_size=topo.world_size, device=topo.device,
                  progress=bars_wanted(show_progress))
    with needs_packages(GENERATORS, cls.name):
        return _generate_run(plan, spec, cls(args, ctx), store, topo, timings, show_progress)


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


def request_keys(plan: Plan, spec: RunSpec, gen, fp: str) -> tuple[dict, dict, dict]:
    """(case id -> prompts, case id -> image keys, image key -> request) of one run."""
    size, uses = plan.bench.size, type(gen).uses
    prompts, keys, requests = {}, {}, {}
    for case in plan.cases:
        pp, pn = _prompts(plan, case, spec.prompt_mode)
        rp = Request(pp, case.pos, case.noise_seed, size)
        rn = Request(pn, case.neg, case.noise_seed, size)
        kp, kn = rp.key(fp, uses), rn.key(fp, uses)
        prompts[case.id], keys[case.id] = (pp, pn), (kp, kn)
        requests[kp], requests[kn] = rp, rn
    return prompts, keys, requests


def _generate_run(plan: Plan, spec: RunSpec, gen, store: ImageStore, topo: Topology, timings: Timings,
                  show_progress: bool) -> RunImages:
    args = gen.args
    verb = type(gen).verb
    try:
        if _prepares(type(gen)):
            gen.prepare(wanted(plan, spec))  # it finds its files again: the fingerprint hashes them
        fp = gen.fingerprint()
        prompts, keys, requests = request_keys(plan, spec, gen, fp)
        batch = spec.batch_size or plan.bench.batch_size
        mine = [c for j, c in enumerate(_chunks(plan.cases, plan.bench.chunk_size)) if topo.owns(j)]
        todo, seen = [], set()
        for chunk in mine:
            for case in chunk:
                for k in keys[case.id]:
                    if k not in seen:
                        seen.add(k)
                        if store.has(k):
                            timings.images_reused += 1
                        else:
                            todo.append(k)
        t_gen = 0.0
        if todo:  # a finished run draws nothing and imports no progress bar
            with Progress(len(todo), f"{spec.name}: {'loading' if verb == 'loaded' else 'generating'}",
                          enabled=show_progress) as bar:
                for i in range(0, len(todo), batch):
                    part = todo[i : i + batch]
                    t0 = time.perf_counter()
                    batch_requests = [requests[k] for k in part]
                    images = gen.generate(batch_requests)
                    t_gen += time.perf_counter() - t0
                    check_images(gen, batch_requests, images)
                    store.put_many(zip(part, images))
                    bar.update(len(part))
        timings.generate_s += t_gen
        if verb == "loaded":
            timings.images_loaded += len(todo)
        else:
            timings.images_generated += len(todo)
        info = {"generator": spec.generator, "fingerprint": fp, "fingerprint_parts": gen.fingerprint_parts(),
                "prompt_mode": spec.prompt_mode, "args": args.model_dump(mode="json"),
                ("images_loaded" if verb == "loaded" else "images_generated"): len(todo), "generate_s": round(t_gen, 3)}
        return RunImages(spec.name, prompts, keys, info)
    finally:
        gen.close()


def reference_run(plan: Plan, store: ImageStore, topo: Topology, draw: bool = True) -> RunImages | None:
    """The suite's reference images: photos for JSONL suites, correct renders for shapes
    (drawn into the store where missing, unless ``draw`` is False: a dry run).

    Pairwise metrics get None for g- when the suite has only a photo of g+.
    """
    if not plan.bench.reference_run or not any(c.reference is not None for c in plan.cases):
        return None
    from relbench.shapes.reference import VERSION, render_reference

    size = plan.bench.size
    prompts, keys = {}, {}
    chunks = _chunks(plan.cases, plan.bench.chunk_size)
    for j, chunk in enumerate(chunks):
        renders = []  # stored per chunk, written together
        for case in chunk:
            prompts[case.id] = _prompts(plan, case, "relation")
            ref = case.reference
            if ref is not None and ref.image is not None:
                keys[case.id] = (f"file:{ref.image}", None)
            elif ref is None or plan.bench.suite.kind != "shapes":
                keys[case.id] = (None, None)
            else:  # the shapes world draws any graph correctly, g- included
                pair = []
                for graph in (case.pos, case.neg):
                    k = stable_hash({"reference": "shapes", "v": VERSION, "graph": [t.text() for t in graph],
                                     "seed": case.seed, "size": list(size)}, n=64)
                    if draw and topo.owns(j) and not store.has(k):
                        renders.append((k, render_reference(graph, case.seed, size)[0]))
                    pair.append(k)
                keys[case.id] = tuple(pair)
        store.put_many(renders)
    from relbench.content_hash import files_sha256

    files = sorted({k for pair in keys.values() for k in pair if k and k.startswith("file:")})
    content = dict(zip(files, files_sha256([store.path(k) for k in files])))
    return RunImages(REFERENCE, prompts, keys, {"generator": "(suite references)", "prompt_mode": "relation"},
                     content)


def _chunk_key(metric_fp: str, run: RunImages, chunk: list[Case]) -> str:
    return stable_hash(
        {"m": metric_fp, "rows": [[c.id, c.item_id, c.negative_kind, c.seed, [t.text() for t in c.pos],
                                   [t.text() for t in c.neg], run.prompts[c.id],
                                   [run.content.get(k, k) for k in run.keys[c.id]]]
                 + ([[list(q) for q in c.questions]] if c.questions else []) for c in chunk]},
        n=32,
    )


def score_file(cache_dir: Path, metric: str, fp: str, run: RunImages, chunk: list[Case]) -> Path:
    """Where one metric's scores of one chunk of one run are kept."""
    return cache_dir / f"{metric}-{fp}" / f"{_chunk_key(fp, run, chunk)}.json"


def score_run(plan: Plan, metrics: list, run: RunImages, store: ImageStore, cache_dir: Path, topo: Topology,
              timings: Timings, only_mine: bool, show_progress: bool = False) -> dict[str, dict]:
    """Per-case values of every metric for one run, reading score files where they exist.

    Chunk-major: a chunk's images are decoded once and shared by all metrics."""
    with Progress(sum(len(c) for j, c in enumerate(_chunks(plan.cases, plan.bench.chunk_size))
                      if topo.owns(j) or not only_mine), f"{run.name}: scoring", "cases", show_progress) as bar:
        return _score_run(plan, metrics, run, store, cache_dir, topo, timings, only_mine, bar)


def _score_run(plan: Plan, metrics: list, run: RunImages, store: ImageStore, cache_dir: Path, topo: Topology,
               timings: Timings, only_mine: bool, bar: Progress) -> dict[str, dict]:
    from relbench.atomic import read_json_cache, write_text

    fps = [m.fingerprint() for m in metrics]
    columns = [check_declaration(m) for m in metrics]
    values: dict[str, dict] = {}
    for j, chunk in enumerate(_chunks(plan.cases, plan.bench.chunk_size)):
        if only_mine and not topo.owns(j):
            continue
        loaded: dict[str, object] = {}

        def load(key: str):
            if key not in loaded:
                loaded[key] = store.get(key)
            return loaded[key]

        samples = None
        for metric, fp, cols in zip(metrics, fps, columns):
            path = score_file(cache_dir, metric.name, fp, run, chunk)
            rows = read_json_cache(path)
            if not (isinstance(rows, list) and len(rows) == len(chunk)):  # missing, or torn by a power loss
                if samples is None:
                    samples = [Sample(c, run.name, *run.prompts[c.id], *run.keys[c.id], _load=load,
                                      texts=_prompts(plan, c, "relation")) for c in chunk]
                t0 = time.perf_counter()
                views, reads = metric_view(metric, samples)
                with needs_packages(METRICS, metric.name):
                    rows = metric.score(views)
                timings.score_s += time.perf_counter() - t0
                reads.check()
                timings.inputs_read.setdefault(metric.name, set()).update(reads.read_kinds)
                check_rows(metric, cols, rows, len(chunk))
                timings.written.append(path)
                write_text(path, json.dumps(rows))
            for c, row in zip(chunk, rows):
                values.setdefault(c.id, {}).update(row)
        bar.update(len(chunk))
    return values


def _take_back(out: Path, paths: list[Path]) -> None:
    """Remove the files this command wrote (and the folders left empty by that): a plugin that
    broke its contract leaves the run directory as it found it, plus its marker and lock."""
    for p in paths:
        p.unlink(missing_ok=True)
    for d in sorted({q for p in paths for q in p.parents if out in q.parents}, key=lambda q: -len(q.parts)):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _build_metrics(plan: Plan, ctx: Context) -> list:
    return [m.cls(m.args, ctx) for m in plan.metrics]


def _close_all(objs) -> None:
    for m in objs:
        m.close()


def execute(plan: Plan, show_progress: bool = True, topo: Topology | None = None) -> RunResult | None:
    """Generate and score everything; on rank 0 return the collected results, else None.

    ``show_progress``: a bar per step on a terminal, else a plain line at most every 10 s."""
    topo = topo or topology()
    show_progress = show_progress and topo.is_main
    t_start = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    if topo.is_main:
        from relbench.run_dir import mark_run_dir

        mark_run_dir(plan.out)
    store = ImageStore(plan.out / "images")
    timings = Timings()
    try:
        return _execute(plan, show_progress, topo, t_start, store, timings)
    except ContractError:
        _take_back(plan.out, store.written + timings.written)
        raise


def _execute(plan: Plan, show_progress: bool, topo: Topology, t_start: float, store: ImageStore,
             timings: Timings) -> RunResult | None:
    cache_dir = plan.out / "cache" / "scores"

    runs: list[RunImages] = []
    for r in plan.runs:
        t0 = time.perf_counter()
        runs.append(generate_run(plan, r.spec, r.cls, r.args, store, topo, timings, show_progress))
        timings.per_run[r.spec.name] = {"wall_s": round(time.perf_counter() - t0, 3)}
    ref = reference_run(plan, store, topo)
    if ref is not None:
        runs.append(ref)

    ctx = Context(vocab=plan.vocab, rank=topo.rank, world_size=topo.world_size, device=topo.device,
                  progress=bars_wanted(show_progress))
    metric_objs = _build_metrics(plan, ctx)
    try:
        for run in runs:
            score_run(plan, metric_objs, run, store, cache_dir, topo, timings, only_mine=True,
                      show_progress=show_progress)
        work = [dict(getattr(m, "counts", None) or {}) for m in metric_objs]
    finally:
        _close_all(metric_objs)
    # every rank's counters, summed on rank 0 (gather doubles as the barrier)
    parts = topo.gather([timings.generate_s, timings.score_s, timings.images_generated, timings.images_reused,
                         timings.images_loaded])
    topo.barrier()
    if not topo.is_main:
        return None
    timings.generate_s, timings.score_s = sum(p[0] for p in parts), sum(p[1] for p in parts)
    timings.images_generated, timings.images_reused = sum(p[2] for p in parts), sum(p[3] for p in parts)
    timings.images_loaded = sum(p[4] for p in parts)

    # rank 0 collects every chunk (computing any a dead rank left behind); models load lazily,
    # so reading score files costs no model load
    scores: dict[str, dict[str, dict]] = {}
    metric_objs = _build_metrics(plan, ctx)
    try:
        metric_info = {
            p.name: MetricInfo(m.fingerprint(), p.args.model_dump(mode="json"), m.columns(), m.aggregates(),
                               list(m.flags), sorted(m.consumes), m.fingerprint_parts(), m.provenance())
            for p, m in zip(plan.metrics, metric_objs)
        }
        for run in runs:
            scores[run.name] = score_run(plan, metric_objs, run, store, cache_dir, topo, timings, only_mine=False)
            rows = list(scores[run.name].values())
            for p, m in zip(plan.metrics, metric_objs):
                metric_info[p.name].flags += m.run_flags(run.name, rows)
        for p, m, done in zip(plan.metrics, metric_objs, work):
            later = dict(getattr(m, "counts", None) or {})
            metric_info[p.name].counts = {k: done.get(k, 0) + later.get(k, 0) for k in {**done, **later}}
    finally:
        _close_all(metric_objs)
    return RunResult(runs, scores, metric_info, timings, time.perf_counter() - t_start, topo)
