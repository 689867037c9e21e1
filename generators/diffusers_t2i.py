"""Any diffusers text-to-image pipeline (SD 1.5, SDXL, SD3.x, PixArt, Sana, FLUX, ...) as a generator.

The pipeline class is the one model_index.json names, checked to be text-to-image before any
weights load. Each prompt is encoded once, alone, and its embeddings cached: an image then
depends on its own prompt only, not on which prompts shared its batch, and a relation's g+
and g- images in the same prompt cost one encoding. Pipelines disagree on what encode_prompt
returns, hence the table below; a family not in it gets its prompts passed as text.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from relbench.errors import UserError
from relbench.plugin.generator import Context, Generator, GeneratorArgs
from relbench.models import pipeline as shared
from relbench.plugin.registry import register_generator

EXAMPLE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

_POOLED = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
_MASKED = ("prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds", "negative_prompt_attention_mask")
#: pipeline class -> the __call__ argument each item of encode_prompt's result is (None: not one)
EMBEDS = {
    "StableDiffusionPipeline": ("prompt_embeds", "negative_prompt_embeds"),
    "StableDiffusionXLPipeline": _POOLED,
    "StableDiffusion3Pipeline": _POOLED,
    "PixArtAlphaPipeline": _MASKED,
    "PixArtSigmaPipeline": _MASKED,
    "SanaPipeline": _MASKED,
    "FluxPipeline": ("prompt_embeds", "pooled_prompt_embeds", None),
}
#: pipelines whose latents are packed 2x2 into tokens: sizes must be multiples of twice the VAE's factor
PACKED = frozenset({"FluxPipeline"})
#: __call__ arguments relbench sets itself (from the request or from this generator's args)
RESERVED = frozenset({"prompt", "prompt_2", "prompt_3", "height", "width", "generator", "latents", "output_type",
                      "return_dict", "num_images_per_prompt", "num_inference_steps", "guidance_scale",
                      "negative_prompt", "callback_on_step_end"}) | {n for n in _POOLED + _MASKED}
#: __call__ inputs that make a pipeline draw from more than text
CONDITIONS = ("control_image", "mask_image", "video")
#: arguments that change where or how fast images are drawn, never what they are
NON_IMAGE_ARGS = frozenset({"device", "enable_model_cpu_offload", "prompt_cache_size", "allow_download"})


class DiffusersArgs(GeneratorArgs):
    model: str = Field(description="local directory with model_index.json, or a hub id in the HF cache")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) in the HF cache")
    allow_download: bool = Field(False, description="let diffusers download a missing model (ignored when HF_HUB_OFFLINE=1)")
    device: str = Field("auto", description="'auto' = the process's accelerator, else cuda if available, else cpu")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    steps: int | None = Field(None, ge=1, description="num_inference_steps (default: the pipeline's)")
    guidance_scale: float | None = Field(None, description="classifier-free guidance (default: the pipeline's)")
    negative_prompt: str | None = Field(None, description="one negative prompt for every image (default: the pipeline's)")
    scheduler: str | None = Field(None, description="a diffusers scheduler class, built from the pipeline's scheduler config")
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict, description="more arguments of the pipeline's __call__ "
                                            "(those encode_prompt takes too, e.g. max_sequence_length, go to both)")
    enable_model_cpu_offload: bool = False
    prompt_cache_size: int = Field(1024, ge=1)


@register_generator("diffusers")
class DiffusersGenerator(shared.FromPipeline, Generator):
    """The pipeline in ``model``, drawing from the prompt only, one CPU torch.Generator per request."""

    Args = DiffusersArgs
    uses = frozenset({"prompt"})
    version = "1"
    batch_tolerance = 1  # batched convolution/attention kernels round differently from batch size 1

    def __init__(self, args: DiffusersArgs, ctx: Context, pipe=None):
        super().__init__(args, ctx)
        self._pipe = pipe
        self._identity: dict | None = None
        self._model_dir: Path | None = None
        self._cls = type(pipe) if pipe is not None else None
        if pipe is not None:
            self.device = str(pipe._execution_device)
            self.dtype = pipe.dtype
            self._check_call_args(self._cls)
        else:
            self.device = shared.resolve_device(args, ctx)
            self.dtype = shared.resolve_dtype(args, self.device)
        self._encode = lru_cache(maxsize=args.prompt_cache_size)(self._encode_one)

    @classmethod
    def from_pipeline(cls, pipe, ctx: Context | None = None, **args):
        """As FromPipeline's; ``model`` only names the pipeline here."""
        args.setdefault("model", type(pipe).__name__)
        gen = super().from_pipeline(pipe, ctx, **args)
        _freeze(pipe)
        return gen

    # identity and checks, before any weights load -----------------------------------------------
    def weights_identity(self) -> dict:
        if self._identity is None:
            if self._pipe is not None:
                ident = {"source": "injected", **{n: shared.module_digest(m) for n, m in _modules(self._pipe)}}
            else:
                ident = self._resolve()
            self._identity = {**ident, "device_type": self.device.split(":")[0], "dtype": str(self.dtype)}
        return self._identity

    def _resolve(self) -> dict:
        from relbench.models import hub

        local = hub.local_dir(self.args.model)
        if local is not None and not (local / "model_index.json").is_file():
            raise UserError(f"{self.name}: {local} has no model_index.json{_what_it_holds(local)}; point `model` at a "
                            f"diffusers pipeline folder (e.g. `{hub.DOWNLOAD} {EXAMPLE_MODEL} --local-dir DIR`)")
        model_dir, ident = shared.resolve_model_dir(self.args, self.name, EXAMPLE_MODEL, "a diffusers pipeline folder")
        index = shared.read_model_index(model_dir, self.name)
        self._cls = _text_to_image_class(model_dir, index, self.name)
        self._check_call_args(self._cls)
        listed = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None]
        shared.check_components(model_dir, index, listed, self.name)
        for name in listed:  # a model's folder (config.json) needs its weights, as safetensors
            folder = model_dir / name
            if (folder / "config.json").is_file() and not any(folder.glob("*.safetensors")):
                bins = "only pickled .bin files, which relbench never loads" if any(folder.glob("*.bin")) else "none"
                raise UserError(f"{self.name}: {folder} has no .safetensors weights ({bins}); copy the complete "
                                f"folder from the model repository ({hub.DOWNLOAD})")
        pairs = [(t, t.replace("tokenizer", "text_encoder")) for t in listed
                 if t.startswith("tokenizer") and t.replace("tokenizer", "text_encoder") in listed]
        shared.check_tokenizers(model_dir, index, pairs, self.name, need_vocab_size=False)
        self._model_dir = model_dir
        ident.pop("listing", None)  # sizes only; the files' contents below
        return {**ident, "files": _file_hashes(model_dir)}

    def _check_call_args(self, cls) -> None:
        params = inspect.signature(cls.__call__).parameters
        known = set(params) | set(inspect.signature(cls.encode_prompt).parameters if hasattr(cls, "encode_prompt") else ())
        for key in self.args.pipeline_kwargs:
            if key in RESERVED:
                raise UserError(f"{self.name}: pipeline_kwargs.{key} is set by relbench (from the request, or the "
                                f"args steps, guidance_scale and negative_prompt)")
            if key not in known - {"self", "kwargs"}:
                allowed = ", ".join(sorted(p for p in params if p not in RESERVED | {"self", "kwargs"}))
                raise UserError(f"{self.name}: pipeline_kwargs.{key} is not an argument of {cls.__name__} "
                                f"(allowed: {allowed})")
        if self.args.scheduler is not None:
            _scheduler_class(self.args.scheduler, self.name)

    def fingerprint_args(self) -> dict:
        return {k: v for k, v in self.args.model_dump(mode="json").items() if k not in NON_IMAGE_ARGS}

    # loading ----------------------------------------------------------------------------------------
    @property
    def pipe(self):
        if self._pipe is None:
            self.weights_identity()
            self._pipe = self._load()
        return self._pipe

    def _load(self):
        from diffusers.pipelines import pipeline_utils

        from relbench.io.progress import library_bars

        dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
        try:
            with library_bars(self.ctx.progress):
                # safetensors only: a folder without them fails here rather than unpickling its .bin files
                pipe = self._cls.from_pretrained(str(self._model_dir), local_files_only=True, use_safetensors=True,
                                                 **{dtype_kw: self.dtype})
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{self.name}: cannot load a {self._cls.__name__} from {self._model_dir} (relbench reads "
                            f"safetensors weights only): {first}") from None
        if self.args.scheduler is not None:
            pipe.scheduler = _scheduler_class(self.args.scheduler, self.name).from_config(pipe.scheduler.config)
        if self.args.enable_model_cpu_offload and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        _freeze(pipe)
        return pipe

    # drawing --------------------------------------------------------------------------------------
    def _call_defaults(self) -> dict:
        """What the pipeline's __call__ would use: its defaults, then this generator's args."""
        params = inspect.signature(type(self.pipe).__call__).parameters
        out = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
        out.update({k: v for k, v in self.args.pipeline_kwargs.items()})
        if self.args.guidance_scale is not None:
            out["guidance_scale"] = self.args.guidance_scale
        if self.args.negative_prompt is not None:
            out["negative_prompt"] = self.args.negative_prompt
        return out

    def _outputs(self) -> tuple | None:
        pipe = self.pipe
        if not hasattr(pipe, "encode_prompt"):
            return None
        return next((EMBEDS[c.__name__] for c in type(pipe).__mro__ if c.__name__ in EMBEDS), None)

    def _encode_one(self, prompt: str) -> dict:
        """encode_prompt for one prompt, given what __call__ would have given it."""
        import torch

        pipe = self.pipe
        defaults = self._call_defaults()
        kw = {}
        for name, p in inspect.signature(pipe.encode_prompt).parameters.items():
            if name == "prompt" or name.endswith(("_embeds", "_mask")) or p.kind is p.VAR_KEYWORD:
                continue
            if name == "device":
                kw[name] = pipe._execution_device
            elif name == "num_images_per_prompt":
                kw[name] = 1
            elif name == "do_classifier_free_guidance":
                kw[name] = float(defaults.get("guidance_scale") or 0) > 1
            elif name in defaults:
                kw[name] = defaults[name]
            elif p.default is inspect.Parameter.empty:
                kw[name] = None  # prompt_2, prompt_3: None means "the same prompt"
        with torch.no_grad():
            result = pipe.encode_prompt(prompt, **kw)
        return {n: t for n, t in zip(self._outputs(), result) if n is not None and t is not None}

    def _draw(self, reqs) -> list:
        import torch

        pipe = self.pipe
        name = type(pipe).__name__
        outputs = self._outputs()
        factor = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "patch_size", None) or 1
        multiple = _lcm(8, pipe.vae_scale_factor * factor * (2 if name in PACKED else 1))
        for r in reqs:
            shared.check_size(r, multiple, self.name)
        w, h = reqs[0].size
        call = {k: v for k, v in self.args.pipeline_kwargs.items()
                if k in inspect.signature(type(pipe).__call__).parameters}
        if self.args.steps is not None:
            call["num_inference_steps"] = self.args.steps
        if self.args.guidance_scale is not None:
            call["guidance_scale"] = self.args.guidance_scale
        if outputs is None:
            call["prompt"] = [r.prompt for r in reqs]
        else:
            encoded = [self._encode(r.prompt) for r in reqs]
            call.update({k: torch.cat([e[k] for e in encoded]) for k in encoded[0]})
        if "negative_prompt_embeds" in call:
            call["negative_prompt"] = None  # PixArt's default "" would clash with the embeddings
        elif self.args.negative_prompt is not None:
            call["negative_prompt"] = [self.args.negative_prompt] * len(reqs)
        gens = [torch.Generator("cpu").manual_seed(int(r.seed)) for r in reqs]
        with torch.no_grad():
            images = pipe(height=h, width=w, generator=gens, output_type="np", return_dict=False, **call)[0]
        return [shared.to_uint8(img) for img in images]

    def generate(self, requests):
        out: list = [None] * len(requests)
        for idxs in shared.group_indices(requests, lambda r: tuple(r.size)):
            for i, img in zip(idxs, self._draw([requests[i] for i in idxs])):
                out[i] = img
        return out

    def close(self) -> None:
        self._encode.cache_clear()
        self._pipe = None
        shared.empty_cuda_cache()


def _lcm(a: int, b: int) -> int:
    import math

    return a * b // math.gcd(a, b)


def _modules(pipe):
    import torch

    return sorted((n, m) for n, m in pipe.components.items() if isinstance(m, torch.nn.Module))


def _freeze(pipe) -> None:
    """Inference only, every parameter frozen: see relbench.models.pipeline.freeze_for_inference."""
    for _, module in _modules(pipe):
        module.eval()
        module.requires_grad_(False)


def _file_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of the folder (hidden ones aside: `hf download`'s .cache metadata)."""
    from relbench.io.content_hash import files_sha256

    files = sorted(p for p in model_dir.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(model_dir).parts))
    return dict(zip((f.relative_to(model_dir).as_posix() for f in files), files_sha256(files)))


def _what_it_holds(folder: Path) -> str:
    """' (it holds one UNet2DConditionModel: a component, not a pipeline)' where config.json says so."""
    import json

    try:
        name = json.loads((folder / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (its config.json is one {name}: a pipeline component, not a pipeline)" if isinstance(name, str) else ""


def _text_to_image_class(model_dir: Path, index: dict, who: str):
    """The pipeline class model_index.json names, if it draws images from text alone."""
    import diffusers
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING

    name = index.get("_class_name")
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    where = model_dir / "model_index.json"
    examples = "StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusion3Pipeline, PixArtSigmaPipeline, FluxPipeline"
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise UserError(f"{who}: {where} names {name!r}, not a pipeline class of diffusers {diffusers.__version__}; "
                        f"a text-to-image one is wanted (e.g. {examples})")
    params = inspect.signature(cls.__call__).parameters
    needs = next((p for p in CONDITIONS if p in params), None)
    if needs is None and "ControlNet" in name:
        needs = "image"
    if cls not in set(AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()) or needs is not None:
        what = f"it draws from {needs!r}" if needs else "diffusers' AutoPipelineForText2Image does not list it"
        raise UserError(f"{who}: {model_dir} holds a {name} ({what}), not a text-to-image pipeline; point `model` "
                        f"at a folder whose model_index.json names one (e.g. {examples})")
    return cls


def _scheduler_class(name: str, who: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        allowed = sorted(n for n in dir(diffusers) if n.endswith("Scheduler") and not n.startswith("_"))
        raise UserError(f"{who}: scheduler {name!r} is not a diffusers scheduler class "
                        f"(e.g. {', '.join(allowed[:6])}, ...)")
    return cls
