"""What the FLUX generators share: arguments, offline model resolution, prompt cache, drawing.

Loading is lazy: ``fingerprint()`` needs only the resolved weights identity (a snapshot
commit or a listing of the local directory), so a fully cached run never loads 30 GB.
"""

from __future__ import annotations

import hashlib
import json
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


# ---------------------------------------------------------------------------- model location


def hub_offline(args: FluxArgs) -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return env or not args.allow_download


def resolve_model_dir(args: FluxArgs, who: str = "flux", example: str = DEFAULT_MODEL,
                      what: str = "a diffusers FLUX directory") -> tuple[Path, dict]:
    """The local directory holding the pipeline, and its identity; one-line UserError (naming
    the generator ``who``; ``example``: the repo the download hints name) if absent."""
    from relbench.models import hub

    path = hub.local_dir(args.model)
    if path is not None:
        if not (path / "model_index.json").is_file():
            raise UserError(
                f"{who}: {path} has no model_index.json; point `model` at {what} "
                f"(e.g. `{hub.DOWNLOAD} {example} --local-dir {path}`)"
            )
        return path, {"source": "local", "listing": _dir_listing(path)}
    if not hub.is_repo_id(args.model):
        raise UserError(f"{who}: model directory {args.model} does not exist; {_download_hint(args.model, example)}")
    try:
        # the diffusers layout only; the repo root also holds a 23 GB original-format file
        snap = hub.snapshot(args.model, revision=args.revision, download=not hub_offline(args),
                            allow_patterns=["model_index.json", "*/*.json", "*/*.safetensors", "*/*.txt", "*/*.model"])
    except Exception as exc:  # LocalEntryNotFoundError, GatedRepoError, network errors
        raise UserError(
            f"{who}: {args.model} is not in the Hugging Face cache ({hub.cache_dir()}) and downloads are off "
            f"({type(exc).__name__}); {_download_hint(args.model, example)}"
        ) from None
    if not (snap / "model_index.json").is_file():
        raise UserError(f"{who}: cached snapshot {snap} is incomplete (no model_index.json); "
                        f"{_download_hint(args.model, example)}")
    return snap, {"source": "hub", "repo": args.model, "commit": snap.name}


def _download_hint(model: str, example: str = DEFAULT_MODEL) -> str:
    from relbench.models.hub import DOWNLOAD, cache_dir

    repo = model if "/" in model and not model.startswith((".", "/", "~")) else example
    return (
        f"download it with `{DOWNLOAD} {repo}` (into the HF cache, {cache_dir()}) "
        f"or `{DOWNLOAD} {repo} --local-dir DIR` and set the generator arg model: DIR"
    )


def _dir_listing(path: Path) -> str:
    """Cheap identity of a local model directory: model_index.json bytes + every file's size."""
    h = hashlib.sha256((path / "model_index.json").read_bytes())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def module_digest(module) -> str:
    """sha256 of a module's tensors, for injected (in-memory) pipelines."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- device and loading


def resolve_device(args: FluxArgs, ctx: Context | None) -> str:
    if args.device != "auto":
        return args.device
    if ctx is not None and ctx.device:
        return ctx.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(args: FluxArgs, device: str):
    import torch

    if args.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, args.dtype)


#: components FluxPipeline cannot run without (model_index.json may list optional ones as null)
REQUIRED = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
#: a prompt every real tokenizer splits into known tokens
PROBE_PROMPT = "a photo of a dog riding a horse"


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


def read_model_index(model_dir: Path, who: str) -> dict:
    try:
        index = json.loads((model_dir / "model_index.json").read_text())
    except ValueError as exc:
        raise UserError(f"{who}: {model_dir / 'model_index.json'} is not valid JSON: {exc}") from None
    if not isinstance(index, dict):
        raise UserError(f"{who}: {model_dir / 'model_index.json'} is not a JSON object")
    return index


def _hint() -> str:
    from relbench.models.hub import DOWNLOAD

    return f"copy the complete folder from the model repository ({DOWNLOAD})"


def check_components(model_dir: Path, index: dict, names, who: str) -> None:
    """Each of ``names`` is listed (not null) in model_index.json and has its subfolder."""
    for name in names:
        entry = index.get(name)
        if not entry or entry[0] is None:
            raise UserError(f"{who}: {model_dir / 'model_index.json'} lists no {name}; {_hint()}")
        if not (model_dir / name).is_dir():
            raise UserError(f"{who}: {model_dir / name} is missing (model_index.json lists {name}); {_hint()}")


def check_tokenizers(model_dir: Path, index: dict, pairs, who: str, need_vocab_size: bool = True) -> None:
    """Each (tokenizer, text encoder) pair: the tokenizer loads, encodes a probe prompt to known
    tokens, and has about as many tokens as the encoder embeds (``need_vocab_size``: an encoder
    config without vocab_size is an error, else that comparison is skipped)."""
    import transformers

    hint = _hint()
    for tok_name, enc_name in pairs:
        folder = model_dir / tok_name
        cls = getattr(transformers, index[tok_name][1], None) or transformers.AutoTokenizer
        try:
            tok = cls.from_pretrained(str(folder))
        except Exception as exc:  # noqa: BLE001 - any failure to build it is the folder's fault
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{who}: cannot load the tokenizer in {folder}: {first}; {hint}") from None
        ids = [i for i in tok(PROBE_PROMPT).input_ids if i not in set(tok.all_special_ids)]
        if not any(c.isalpha() for c in tok.decode(ids)):  # only <unk> and word-boundary pieces
            raise UserError(f"{who}: the tokenizer in {folder} ({len(tok)} tokens) encodes {PROBE_PROMPT!r} to "
                            f"unknown tokens only (is tokenizer.json missing?); {hint}")
        try:
            vocab_size = int(json.loads((model_dir / enc_name / "config.json").read_text())["vocab_size"])
        except (OSError, ValueError, KeyError):
            if not need_vocab_size:
                continue
            raise UserError(f"{who}: {model_dir / enc_name / 'config.json'} is missing or has no vocab_size; {hint}") from None
        if len(tok) > vocab_size or len(tok) < vocab_size // 2:
            raise UserError(f"{who}: the tokenizer in {folder} has {len(tok)} tokens but {model_dir / enc_name} "
                            f"embeds {vocab_size}: they are not a pair; {hint}")


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


PIPE_MODULES = ("transformer", "vae", "text_encoder", "text_encoder_2")


def freeze_for_inference(pipe, *extra) -> None:
    """Inference only: no dropout anywhere, and every parameter frozen.

    Frozen matters for the numbers, not only for memory: ATen's matmul takes another path for
    a batched, non-contiguous input when the weight requires grad (it does not fold the batch
    dimensions), which changes results in the last bit; after uint8 rounding that is a pixel.
    diffusers loads weights with requires_grad=True, the trainer freezes them, so without this
    `relbench run --ckpt` and the trainer's own evaluation drew different images.
    """
    modules = [getattr(pipe, n, None) for n in PIPE_MODULES] + list(extra)
    for module in modules:
        if module is not None:
            module.eval()
            module.requires_grad_(False)


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


# ---------------------------------------------------------------------------- prompts and drawing


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


def check_size(req: Request, multiple: int, who: str = "flux") -> None:
    w, h = req.size
    if w % multiple or h % multiple:
        raise UserError(f"{who}: image size {w}x{h} must be a multiple of {multiple} in both sides")


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


def to_uint8(img) -> np.ndarray:
    import numpy as np

    """Float [0, 1] (H, W, 3) to uint8 exactly as diffusers' numpy_to_pil rounds."""
    return np.ascontiguousarray((np.asarray(img) * 255).round().clip(0, 255).astype(np.uint8))


def group_indices(requests: list[Request], key) -> list[list[int]]:
    """Indices of requests grouped by ``key(request)``, in first-seen order."""
    groups: dict = {}
    for i, r in enumerate(requests):
        groups.setdefault(key(r), []).append(i)
    return list(groups.values())


def fingerprint_args(args: FluxArgs) -> dict:
    return {k: v for k, v in args.model_dump(mode="json").items() if k not in NON_IMAGE_ARGS}


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=2)


# ---------------------------------------------------------------------------- the shared generator


class FluxBase(Generator):
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

    @classmethod
    def from_pipeline(cls, pipe, ctx: Context | None = None, **args):
        """Wrap an already-built FluxPipeline (tests, notebooks, a trainer's evaluation loop)."""
        if ctx is None:
            from relbench.spec.predicates import load_vocabulary

            ctx = Context(vocab=load_vocabulary())
        return cls(cls.Args(**args), ctx, pipe=pipe)

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


def empty_cuda_cache() -> None:
    """Give a closed generator's GPU memory back before the next run's generator loads."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
