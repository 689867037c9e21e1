"""Layout-conditioned baseline: GLIGEN (diffusers' StableDiffusionGLIGENPipeline), told where
each object of the graph goes. It answers "told where to put the objects, is the relation
drawn?", the upper bound a layout step gives a scene-graph model.

Boxes come from ``layout: rule`` (a canonical box pair per geometric predicate,
relbench.suites.layouts.RULE_BOXES) or ``layout: reference`` (the suite's own boxes); the phrases are
the graph's object names. A graph with no layout is drawn without boxes (the gated
attention off for every step) and counted in the run's manifest entry.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

from pydantic import Field, model_validator

from relbench.spec.data import Request, graph_objects
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.models.pipeline import FromPipeline
from relbench.plugin.generator import Generator, GeneratorArgs
from relbench.suites.layouts import Layout, rule_layout
from relbench.plugin.registry import register_generator

DEFAULT_MODEL = "masterful/gligen-1-4-generation-text-box"
#: arguments that change where or how fast images are drawn, never what they are
NON_IMAGE_ARGS = frozenset({"device", "cpu_offload", "allow_download", "batch_size"})
#: the pipeline's own check: both sides a multiple of 8
MULTIPLE = 8


class GligenArgs(GeneratorArgs):
    model: str = Field(DEFAULT_MODEL, description="local directory with model_index.json, or a hub id in the HF cache")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) in the HF cache")
    allow_download: bool = Field(False, description="let diffusers download a missing model (ignored when HF_HUB_OFFLINE=1)")
    layout: Literal["rule", "reference"] = Field(
        "rule", description="rule: canonical boxes per geometric predicate; reference: the suite's boxes")
    device: str = Field("auto", description="'auto' = the process's accelerator, else cuda if available, else cpu")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    steps: int = Field(50, ge=1)
    guidance_scale: float = 7.5
    scheduled_sampling_beta: float = Field(0.3, ge=0.0, le=1.0,
                                           description="share of the steps that see the boxes (GLIGEN's beta)")
    negative_prompt: str | None = None
    batch_size: int = Field(8, ge=1, description="most images per pipeline call")
    cpu_offload: bool = False

    @model_validator(mode="after")
    def _some_step_sees_the_boxes(self):
        # the pipeline grounds the first int(beta * steps) steps: 0.3 of 2 steps is none at all
        if self.scheduled_sampling_beta > 0 and int(self.scheduled_sampling_beta * self.steps) == 0:
            raise ValueError(f"scheduled_sampling_beta {self.scheduled_sampling_beta} of {self.steps} steps grounds "
                             f"no step (the pipeline uses int(beta * steps)), so the boxes would be ignored; allowed: "
                             f"beta * steps >= 1, or beta 0 for no boxes")
        return self


@register_generator("gligen")
class GligenGenerator(FromPipeline, Generator):
    """GLIGEN text-box generation from a local directory or the HF cache; reads prompt and graph.

    Defaults follow diffusers' GLIGEN example: 50 steps, guidance 7.5, beta 0.3. The safety
    checker is not loaded: a blacked-out image would be scored as a drawing.
    """

    Args = GligenArgs
    uses = frozenset({"prompt", "graph"})  # + "layout" with layout: reference (boxes from the suite)
    version = "1"
    batch_tolerance = 1  # batched convolution/attention kernels round differently from batch size 1

    def __init__(self, args: GligenArgs, ctx: Context, pipe=None):
        from relbench.models.pipeline import resolve_device, resolve_dtype

        super().__init__(args, ctx)
        if args.layout == "reference":
            self.uses = frozenset({"prompt", "graph", "layout"})
        self._pipe = pipe
        self._model_dir = None
        self._identity: dict | None = None
        if pipe is not None:
            self._freeze(pipe)
            self.device, self.dtype = str(pipe._execution_device), pipe.unet.dtype
        else:
            self.device = resolve_device(args, ctx)
            self.dtype = resolve_dtype(args, self.device)

    # identity ------------------------------------------------------------------------------
    def weights_identity(self) -> dict:
        if self._identity is None:
            if self._pipe is not None:
                from relbench.models.pipeline import module_digest

                ident = {"source": "injected", "unet": module_digest(self._pipe.unet)}
            else:
                from relbench.models.pipeline import resolve_model_dir

                self._model_dir, ident = resolve_model_dir(self.args, self.name, DEFAULT_MODEL, "a diffusers GLIGEN directory")
                _check_model_dir(self._model_dir, self.name)
            self._identity = {**ident, "device_type": self.device.split(":")[0], "dtype": str(self.dtype)}
        return self._identity

    def fingerprint_args(self) -> dict:
        return {k: v for k, v in self.args.model_dump(mode="json").items() if k not in NON_IMAGE_ARGS}

    # layouts -------------------------------------------------------------------------------
    def layout_of(self, request: Request) -> Layout | None:
        """The boxes this request is drawn with, or None (drawn without boxes)."""
        if self.args.layout == "reference":
            return request.layout or None
        return rule_layout(request.graph, self.ctx.vocab)

    def run_info(self, requests: list[Request]) -> dict:
        without: Counter[str] = Counter()
        for r in requests:
            if self.layout_of(r) is None:
                preds = {self.ctx.vocab.resolve(t.predicate) or t.predicate for t in r.graph}
                without[" + ".join(sorted(preds))] += 1
        return {"layout": {"mode": self.args.layout, "images_with_boxes": len(requests) - sum(without.values()),
                           "images_without_boxes": sum(without.values()),
                           "without_boxes_by_predicate": dict(sorted(without.items()))}}

    def _conditioning(self, request: Request) -> tuple[tuple[str, ...], tuple, float]:
        """(phrases, boxes, beta) of one request; phrases in the graph's order of mention."""
        layout = self.layout_of(request)
        if layout is None:
            # the pipeline needs one phrase; beta 0 switches the gated attention off before the
            # first step, so neither the placeholder nor its box reaches the image
            return ("",), ((0.0, 0.0, 0.0, 0.0),), 0.0
        boxes = dict(layout)
        names = [n for n in graph_objects(request.graph) if n in boxes]
        return tuple(names), tuple(tuple(boxes[n]) for n in names), self.args.scheduled_sampling_beta

    # drawing -------------------------------------------------------------------------------
    @property
    def pipe(self):
        if self._pipe is None:
            self.weights_identity()
            self._pipe = _load(self._model_dir, self.dtype, self.device, self.args.cpu_offload, self.name,
                               self.ctx.progress)
            self._freeze(self._pipe)
        return self._pipe

    @staticmethod
    def _freeze(pipe) -> None:
        from relbench.models.pipeline import freeze_for_inference

        freeze_for_inference(pipe, pipe.unet)

    def generate(self, requests: list[Request]):
        from relbench.models.pipeline import check_size, group_indices

        for r in requests:
            check_size(r, MULTIPLE, self.name)
        pipe = self.pipe
        out = [None] * len(requests)
        # the pipeline takes one layout per call: requests are grouped by size and layout
        for group in group_indices(requests, lambda r: (r.size, self._conditioning(r))):
            for start in range(0, len(group), self.args.batch_size):
                part = group[start : start + self.args.batch_size]
                reqs = [requests[i] for i in part]
                for i, img in zip(part, self._draw(pipe, reqs, self._conditioning(reqs[0]))):
                    out[i] = img
        return out

    def _draw(self, pipe, reqs: list[Request], cond):
        """One pipeline call for requests of one size and one layout; one CPU torch.Generator per
        request seed, so a request's noise is what a batch of one with that seed would get."""
        import torch

        from relbench.models.pipeline import to_uint8

        phrases, boxes, beta = cond
        w, h = reqs[0].size
        negative = [self.args.negative_prompt] * len(reqs) if self.args.negative_prompt is not None else None
        with torch.no_grad():
            images = pipe(
                prompt=[r.prompt for r in reqs],
                negative_prompt=negative,
                height=h,
                width=w,
                num_inference_steps=self.args.steps,
                guidance_scale=self.args.guidance_scale,
                gligen_scheduled_sampling_beta=beta,
                gligen_phrases=list(phrases),
                gligen_boxes=[list(b) for b in boxes],
                generator=[torch.Generator("cpu").manual_seed(int(r.seed)) for r in reqs],
                output_type="np",
                return_dict=False,
            )[0]
        return [to_uint8(img) for img in images]

    def close(self) -> None:
        self._pipe = None


def _check_model_dir(model_dir, who: str) -> None:
    """Refuse, before loading, a folder that is not a GLIGEN text-box pipeline: a plain Stable
    Diffusion UNet has no box projection, so the boxes would be silently ignored."""
    try:
        index = json.loads((model_dir / "model_index.json").read_text())
        unet = json.loads((model_dir / "unet" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{who}: cannot read {model_dir}'s model_index.json and unet/config.json ({type(exc).__name__}); "
                        f"copy the complete folder of a GLIGEN text-box model, e.g. {DEFAULT_MODEL}") from None
    kind, attention = index.get("_class_name"), unet.get("attention_type")
    if kind != "StableDiffusionGLIGENPipeline" or attention != "gated":
        raise UserError(f"{who}: {model_dir} holds a {kind} (unet attention_type {attention!r}), not a GLIGEN text-box "
                        f"pipeline (StableDiffusionGLIGENPipeline with attention_type 'gated'), e.g. {DEFAULT_MODEL}")


def _load(model_dir, dtype, device: str, cpu_offload: bool, who: str, progress: bool):
    from diffusers import StableDiffusionGLIGENPipeline
    from diffusers.pipelines import pipeline_utils

    from relbench.io.progress import library_bars

    dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
    try:
        with library_bars(progress):
            pipe = StableDiffusionGLIGENPipeline.from_pretrained(
                str(model_dir), local_files_only=True, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, **{dtype_kw: dtype})
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{who}: cannot load a StableDiffusionGLIGENPipeline from {model_dir}: {first}") from None
    if cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
