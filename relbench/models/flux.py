"""What the FLUX generators share: arguments, the pipeline's checks and loading, the prompt
cache, drawing.

Loading is lazy: ``fingerprint()`` needs only the resolved weights identity (a snapshot
commit or a listing of the local directory), so a fully cached run never loads 30 GB.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from relbench.spec.data import Request
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.generator import Generator, GeneratorArgs
from relbench.models.pipeline import PIPE_MODULES, FromPipeline, check_components, check_size, check_tokenizers, empty_cuda_cache, freeze_for_inference, group_indices, module_digest, read_model_index, resolve_device, resolve_dtype, resolve_model_dir, to_uint8


if TYPE_CHECKING:  # numpy is imported where images are made, not at plugin discovery
    import numpy as np


DEFAULT_MODEL = "black-forest-labs/FLUX.1-schnell"


#: arguments that change where or how fast images are drawn, never what they are
NON_IMAGE_ARGS = frozenset({"device", "cpu_offload", "prompt_cache_size", "allow_download", "ckpt", "allow_other_base"})


class FluxArgs(GeneratorArgs):
    model: str = Field(
        default_factory=lambda: os.environ.get("RELBENCH_FLUX_MODEL") or DEFAULT_MODEL,
        description="local directory with model_index.json, or a hub id in the HF cache "
        "(default: $RELBENCH_FLUX_MODEL, else black-forest-labs/FLUX.1-schnell)",
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) in the HF cache")
    allow_download: bool = Field(False, description="let diffusers download a missing model (ignored when HF_HUB_OFFLINE=1)")
    device: str = Field("auto", description="'auto' = the process's accelerator, else cuda if available, else cpu")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    steps: int = Field(4, ge=1)
    guidance: float = 0.0
    max_sequence_length: int = Field(256, ge=1, le=512, description="T5 tokens (schnell: at most 256)")
    cpu_offload: bool = False
    prompt_cache_size: int = Field(1024, ge=1)


#: components FluxPipeline cannot run without (model_index.json may list optional ones as null)
REQUIRED = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")




def check_model_dir(model_dir: Path, who: str = "flux") -> None:
    """Refuse a FLUX directory that would load but draw wrong images, before any weights load.

    Without tokenizer_2/tokenizer.json transformers still builds a T5 tokenizer, of a few
    special tokens, that maps every word to <unk>: a baseline that never reads its prompt.
    So every listed subfolder must exist, each tokenizer must encode a probe prompt to known
    tokens, and its ids must fit its text encoder's embedding table.
    """
    index = read_model_index(model_dir, who)
    check_components(model_dir, index, REQUIRED, who)
    check_tokenizers(model_dir, index, (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")), who)


def load_pipeline(model_dir: Path, dtype, device: str, cpu_offload: bool, who: str = "flux", progress: bool = False):
    """FluxPipeline from a checked local directory; ``progress``: diffusers' loading bars."""
    from diffusers import FluxPipeline
    from diffusers.pipelines import pipeline_utils

    from relbench.io.progress import library_bars

    check_model_dir(model_dir, who)

    # diffusers renamed torch_dtype to dtype (the old name warns); use whichever this version reads
    dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
    try:
        with library_bars(progress):
            pipe = FluxPipeline.from_pretrained(str(model_dir), local_files_only=True, **{dtype_kw: dtype})
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{who}: cannot load a FluxPipeline from {model_dir}: {first}") from None
    if cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    freeze_for_inference(pipe)
    return pipe




@contextmanager
def inference_state(pipe, *extra):
    """``freeze_for_inference`` for a block, restoring every module's training flag and every
    parameter's requires_grad afterwards (the trainer evaluates its live modules)."""
    modules = [m for m in [getattr(pipe, n, None) for n in PIPE_MODULES] + list(extra) if m is not None]
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(sub, sub.training) for m in modules for sub in m.modules()]
    freeze_for_inference(pipe, *extra)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for sub, mode in modes:
            sub.training = mode


class PromptCache:
    """T5 + pooled CLIP embeddings per unique prompt, encoded one prompt at a time.

    One at a time so a prompt's embedding never depends on which prompts were encoded with it.
    """

    def __init__(self, size: int):
        self.size = size
        self._cache: OrderedDict[str, tuple] = OrderedDict()

    def get(self, pipe, prompts: list[str], max_sequence_length: int):
        import torch

        out_e, out_p = [], []
        for prompt in prompts:
            hit = self._cache.get(prompt)
            if hit is None:
                with torch.no_grad():
                    e, p, _ = pipe.encode_prompt(
                        prompt, prompt_2=None, device=pipe._execution_device, max_sequence_length=max_sequence_length
                    )
                hit = (e, p)
                self._cache[prompt] = hit
                if len(self._cache) > self.size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(prompt)
            out_e.append(hit[0])
            out_p.append(hit[1])
        return torch.cat(out_e), torch.cat(out_p)

    def clear(self) -> None:
        self._cache.clear()


def draw(pipe, args: FluxArgs, prompts: PromptCache, reqs: list[Request], who: str = "flux") -> list[np.ndarray]:
    """One pipeline call for requests of one size; one CPU torch.Generator per request seed.

    diffusers draws each request's initial noise from its own generator (randn_tensor with a
    list), so a request's noise is what a batch of one with that seed would get.
    """
    import torch

    multiple = pipe.vae_scale_factor * 2
    for r in reqs:
        check_size(r, multiple, who)
    w, h = reqs[0].size
    embeds, pooled = prompts.get(pipe, [r.prompt for r in reqs], args.max_sequence_length)
    gens = [torch.Generator("cpu").manual_seed(int(r.seed)) for r in reqs]
    with torch.no_grad():
        images = pipe(
            prompt_embeds=embeds,
            pooled_prompt_embeds=pooled,
            height=h,
            width=w,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=gens,
            output_type="np",
            return_dict=False,
            max_sequence_length=args.max_sequence_length,
        )[0]
    return [to_uint8(img) for img in images]


def fingerprint_args(args: FluxArgs) -> dict:
    return {k: v for k, v in args.model_dump(mode="json").items() if k not in NON_IMAGE_ARGS}


class FluxBase(FromPipeline, Generator):
    """FLUX drawing loop shared by ``flux`` and ``flux_graph_lora``; loads the pipeline lazily."""

    Args = FluxArgs
    uses = frozenset({"prompt"})
    batch_tolerance = 1  # batched attention/matmul kernels round differently from batch size 1

    def __init__(self, args: FluxArgs, ctx: Context, pipe=None):
        super().__init__(args, ctx)
        self._pipe = pipe
        self._model_dir: Path | None = None
        self._base_identity: dict | None = None
        if pipe is not None:
            freeze_for_inference(pipe)
            self.device = str(pipe._execution_device)
            self.dtype = pipe.transformer.dtype
        else:
            self.device = resolve_device(args, ctx)
            self.dtype = resolve_dtype(args, self.device)
        self.prompts = PromptCache(args.prompt_cache_size)

    # identity ------------------------------------------------------------------------------
    def base_identity(self) -> dict:
        if self._base_identity is None:
            if self._pipe is not None:
                ident = {"source": "injected", "transformer": module_digest(self._pipe.transformer)}
            else:
                self._model_dir, ident = resolve_model_dir(self.args, self.name)
            self._base_identity = {**ident, "device_type": self.device.split(":")[0], "dtype": str(self.dtype)}
        return self._base_identity

    def weights_identity(self):
        return self.base_identity()

    def fingerprint_args(self) -> dict:
        return fingerprint_args(self.args)

    # drawing -------------------------------------------------------------------------------
    @property
    def pipe(self):
        if self._pipe is None:
            self.base_identity()
            self._pipe = load_pipeline(self._model_dir, self.dtype, self.device, self.args.cpu_offload, self.name,
                                       progress=self.ctx.progress)
            self._on_pipeline_loaded(self._pipe)
        return self._pipe

    def _on_pipeline_loaded(self, pipe) -> None:
        """Hook for subclasses that modify the transformer (LoRA, graph injection)."""

    def _group_key(self, request: Request):
        return tuple(request.size)

    def _draw_group(self, pipe, reqs: list[Request]) -> list[np.ndarray]:
        return draw(pipe, self.args, self.prompts, reqs, self.name)

    def generate(self, requests: list[Request]) -> list[np.ndarray]:
        pipe = self.pipe
        out: list[np.ndarray | None] = [None] * len(requests)
        for idxs in group_indices(requests, self._group_key):
            for i, img in zip(idxs, self._draw_group(pipe, [requests[i] for i in idxs])):
                out[i] = img
        return out  # type: ignore[return-value]

    def close(self) -> None:
        self.prompts.clear()
        self._pipe = None
        empty_cuda_cache()
