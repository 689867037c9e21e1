"""Executing a plan: cases x runs -> images in the store -> per-sample scores.

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

from relbench.spec.config import RunSpec
from relbench.spec.data import Case, Request, stable_hash
from relbench.engine.distributed import Topology, topology
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample, metric_view
from relbench.io.progress import Progress, bars_wanted
from relbench.plugin.contract import ContractError, check_declaration, check_images, check_rows
from relbench.plugin.registry import GENERATORS, METRICS, needs_packages
from relbench.engine.store import ImageStore
from relbench.engine.plan import MetricInfo, Plan, REFERENCE, Timings, _prepares, _prompts, relation_texts, wanted


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


@dataclass
class RunResult:
    """What ``execute`` hands to results.py: the images of every run and their scores."""

    runs: list[RunImages]
    scores: dict[str, dict[str, dict]]  # run -> case id -> column -> value
    metrics: dict[str, MetricInfo]
    timings: Timings
    wall_s: float
    topology: Topology


def _chunks(cases: list[Case], size: int) -> list[list[Case]]:
    return [cases[i : i + size] for i in range(0, len(cases), size)]


def generate_run(plan: Plan, spec: RunSpec, cls, args, store: ImageStore, topo: Topology, timings: Timings,
                 show_progress: bool) -> RunImages:
    ctx = Context(vocab=plan.vocab, rank=topo.rank, world_size=topo.world_size, device=topo.device,
                  progress=bars_wanted(show_progress))
    with needs_packages(GENERATORS, cls.name):
        return _generate_run(plan, spec, cls(args, ctx), store, topo, timings, show_progress)


def request_keys(plan: Plan, spec: RunSpec, gen, fp: str) -> tuple[dict, dict, dict]:
    """(case id -> prompts, case id -> image keys, image key -> request) of one run."""
    size, uses = plan.bench.size, gen.uses  # a generator's arguments may widen its class's uses
    prompts, keys, requests = {}, {}, {}
    for case in plan.cases:
        pp, pn = _prompts(plan, case, spec.prompt_mode)
        rp = Request(pp, case.pos, case.noise_seed, size, _layout(plan, case, case.pos, uses))
        rn = Request(pn, case.neg, case.noise_seed, size, _layout(plan, case, case.neg, uses))
        kp, kn = rp.key(fp, uses), rn.key(fp, uses)
        prompts[case.id], keys[case.id] = (pp, pn), (kp, kn)
        requests[kp], requests[kn] = rp, rn
    return prompts, keys, requests


def _layout(plan: Plan, case: Case, graph, uses: frozenset[str]):
    if "layout" not in uses:
        return None
    from relbench.suites.layouts import reference_layout

    return reference_layout(case, graph, plan.bench.size, plan.bench.suite.kind)


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
                "prompt_mode": spec.prompt_mode, "args": args.model_dump(mode="json"), "images_generated": len(todo),
                "generate_s": round(t_gen, 3), **gen.run_info(list(requests.values()))}
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
            prompts[case.id] = relation_texts(plan, case)  # references were drawn from no prompt
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
    from relbench.io.content_hash import files_sha256

    files = sorted({k for pair in keys.values() for k in pair if k and k.startswith("file:")})
    content = dict(zip(files, files_sha256([store.path(k) for k in files])))
    return RunImages(REFERENCE, prompts, keys, {"generator": "(suite references)", "prompt_mode": "relation"},
                     content)


def _chunk_key(metric_fp: str, run: RunImages, chunk: list[Case]) -> str:
    return stable_hash(
        {"m": metric_fp, "rows": [[c.id, c.item_id, c.negative_kind, c.seed, [t.text() for t in c.pos],
                                   [t.text() for t in c.neg], run.prompts[c.id],
                                   [run.content.get(k, k) for k in run.keys[c.id]]]
                 + ([[list(q) for q in c.questions]] if c.questions else [])
                 + ([c.prompt.text] if c.prompt is not None else []) for c in chunk]},
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
    from relbench.io.atomic import read_json_cache, write_text

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
                                      texts=relation_texts(plan, c)) for c in chunk]
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
        from relbench.engine.run_dir import mark_run_dir

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
            m.key(): MetricInfo(m.fingerprint(), p.args.model_dump(mode="json"), m.columns(), m.aggregates(),
                                list(m.flags), sorted(m.consumes), m.fingerprint_parts(), m.provenance(),
                                m.confusions())
            for p, m in zip(plan.metrics, metric_objs)
        }
        for run in runs:
            scores[run.name] = score_run(plan, metric_objs, run, store, cache_dir, topo, timings, only_mine=False)
            rows = list(scores[run.name].values())
            for p, m in zip(plan.metrics, metric_objs):
                metric_info[m.key()].flags += m.run_flags(run.name, rows)
        for p, m, done in zip(plan.metrics, metric_objs, work):
            later = dict(getattr(m, "counts", None) or {})
            metric_info[m.key()].counts = {k: done.get(k, 0) + later.get(k, 0) for k in {**done, **later}}
    finally:
        _close_all(metric_objs)
    return RunResult(runs, scores, metric_info, timings, time.perf_counter() - t_start, topo)
