"""In-training evaluation through the harness itself: the same plan/execute/write_results and
metrics as `relbench run`, on the first val items, with the live training modules.

The run's generator is flux_graph_lora drawing with the training pipeline and the current
graph encoder/injector/LoRA (no reload of the base model per evaluation); its fingerprint is
the digest of the checkpoint just written, so the images are those `relbench run --generator
flux_graph_lora --ckpt <that checkpoint>` draws (bit-identical in float32; the tests check).
"""

from __future__ import annotations

from pathlib import Path

from relbench.errors import UserError

RUN = "graph_lora"


def eval_benchmark(cfg, out_dir: Path):
    """The Benchmark an evaluation runs (validated like benchmark.yaml)."""
    from relbench.spec.config import Benchmark

    ev = cfg.eval
    metrics = [{"name": m} if isinstance(m, str) else m for m in ev.metrics]
    suite = {"kind": "jsonl", "path": cfg.val_jsonl}
    if cfg.val_images_root:
        suite["images_root"] = cfg.val_images_root
    try:
        return Benchmark.model_validate({
            "name": "train-eval", "suite": suite, "seeds": ev.seeds,
            "negatives": {**cfg.objective.negatives.model_dump(mode="json"), "per_item": "one"},
            "resolution": ev.resolution or cfg.resolution, "batch_size": ev.batch_size, "limit": ev.limit,
            "metrics": metrics,
            "runs": [{"name": RUN, "generator": "flux_graph_lora", "prompt_mode": ev.prompt_mode,
                      "args": {"model": cfg.model, "steps": ev.steps, "max_sequence_length": cfg.max_sequence_length}}],
            "reference_run": False, "output_dir": str(out_dir), "bootstrap_resamples": ev.bootstrap_resamples,
            "predicates": cfg.predicates,
        })
    except Exception as exc:  # pydantic ValidationError: say which eval key
        err = exc.errors()[0] if hasattr(exc, "errors") else None
        where = ".".join(str(p) for p in err["loc"]) if err else ""
        raise UserError(f"eval: {where}: {err['msg'] if err else exc}") from None


def check_eval(cfg, out_dir: Path, negative_source=None) -> dict | None:
    """Plan once before training (bad val files, metric names and best_metric fail now, not
    after hours); returns {"key", "mode"} of the metric that picks the best checkpoint.
    ``negative_source``: the run hard negatives come from, so evaluation corrupts as training does."""
    if cfg.eval is None:
        return None
    if not cfg.val_jsonl:
        raise UserError("eval: needs val_jsonl (--val-jsonl), or set eval: null")
    from relbench.engine.plan import plan

    p = plan(eval_benchmark(cfg, out_dir), check_output=False,  # eval/ holds the step-N run directories
             negative_source=negative_source)
    if cfg.eval.best_metric is None:
        return None
    from relbench.plugin.context import Context

    aggs = {}
    ctx = Context(vocab=p.vocab)  # metrics may read it when built (spatial: the detector's device)
    for pm in p.metrics:
        m = pm.cls(pm.args, ctx)
        aggs.update({a.key: a for a in m.aggregates()})
    agg = aggs.get(cfg.eval.best_metric)
    if agg is None:
        raise UserError(f"eval.best_metric: {cfg.eval.best_metric!r} is not an aggregate of the eval metrics "
                        f"(known: {', '.join(sorted(aggs))})")
    mode = cfg.eval.best_mode or {True: "max", False: "min"}.get(agg.higher_is_better)
    if mode is None:
        raise UserError(f"eval.best_mode: {cfg.eval.best_metric!r} has no better direction; set best_mode: max or min")
    return {"key": cfg.eval.best_metric, "mode": mode}


def live_generator_class(pipe, graph_lora, identity: dict):
    """flux_graph_lora bound to the training pipeline and modules."""
    from relbench.generators.flux_graph_lora import FluxGraphLoraGenerator

    class LiveGraphLora(FluxGraphLoraGenerator):
        name = "flux_graph_lora"

        def __init__(self, args, ctx):
            super().__init__(args, ctx, pipe=pipe)

        def base_identity(self):  # no digest of 12B weights per evaluation
            return {"source": "training"}

        def weights_identity(self):
            return identity

        def code_identity(self):  # the code that draws is flux_graph_lora's, as under `relbench run`
            from relbench.io.code_identity import code_identity

            return code_identity(FluxGraphLoraGenerator)

        def _on_pipeline_loaded(self, pipe):
            self.graph_lora = graph_lora

        def close(self):
            self.graph_lora = None
            self.prompts.clear()

    return LiveGraphLora


def headline(metrics: dict, best_metric: str | None = None) -> str:
    """'key value [ci_low, ci_high]' for the keys worth a terminal line: the best-checkpoint
    metric, every accuracy with a chance level, and the first aggregate of each metric."""
    keys, seen = [], set()
    for k, e in metrics.items():
        if k == best_metric or e.get("chance") is not None or e.get("metric", k) not in seen:
            keys.append(k)
        seen.add(e.get("metric", k))

    def cell(e):
        if e.get("value") is None:
            return "- (no values)"
        lo, hi = e.get("ci_low"), e.get("ci_high")
        ci = f" [{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else " [interval undefined]"
        chance = f" (chance {e['chance']:.3g})" if e.get("chance") is not None else ""
        return f"{e['value']:.4g}{ci}{chance}"

    return ", ".join(f"{k} {cell(metrics[k])}" for k in keys)


def evaluate(cfg, out_dir: Path, pipe, graph_lora, identity: dict, negative_source=None) -> dict:
    """Run the harness on the val subset; returns summary.json's metric entries of the run
    (value, ci_low, ci_high, n, chance, ...) by aggregate key."""
    from relbench.engine.distributed import Topology
    from relbench.results.write import write_results
    from relbench.engine.execute import execute
    from relbench.engine.plan import plan

    p = plan(eval_benchmark(cfg, out_dir), negative_source=negative_source)
    p.runs[0].cls = live_generator_class(pipe, graph_lora, identity)
    collected = execute(p, show_progress=False, topo=Topology())  # this process only
    summary = write_results(p, collected, argv=["train-eval"])
    return dict(summary["runs"][RUN]["metrics"])
