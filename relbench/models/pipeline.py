"""What every diffusers-pipeline plugin shares (flux, flux_graph_lora, diffusers, gligen, the
trainer): the model folder found offline in a local directory or the HF cache with one line
saying how to provide it, its model_index.json and components checked before any weight loads,
device and dtype, inference-only modules, and images handed back as uint8 arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING


from relbench.spec.data import Request
from relbench.errors import UserError
from relbench.plugin.context import Context

if TYPE_CHECKING:  # numpy is imported where images are made
    import numpy as np


#: the repo a download hint names when the model is not one (the project's reference model)
REFERENCE_MODEL = "black-forest-labs/FLUX.1-schnell"
#: a prompt every real tokenizer splits into known tokens
PROBE_PROMPT = "a photo of a dog riding a horse"
#: the modules of a FLUX pipeline frozen for inference (a pipeline without one skips it)
PIPE_MODULES = ("transformer", "vae", "text_encoder", "text_encoder_2")



class FromPipeline:
    """Mixin of the pipeline plugins (flux, flux_graph_lora, gligen, diffusers): the plugin built
    around an already-built pipeline (tests, notebooks, a trainer's evaluation loop), which it
    uses instead of resolving a model folder."""

    @classmethod
    def from_pipeline(cls, pipe, ctx: Context | None = None, **args):
        if ctx is None:
            from relbench.spec.predicates import load_vocabulary

            ctx = Context(vocab=load_vocabulary())
        return cls(cls.Args(**args), ctx, pipe=pipe)

def hub_offline(args) -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return env or not args.allow_download


def resolve_model_dir(args, who: str = "flux", example: str = REFERENCE_MODEL,
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


def _download_hint(model: str, example: str = REFERENCE_MODEL) -> str:
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


def resolve_device(args, ctx: Context | None) -> str:
    if args.device != "auto":
        return args.device
    if ctx is not None and ctx.device:
        return ctx.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(args, device: str):
    import torch

    if args.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, args.dtype)


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


def check_size(req: Request, multiple: int, who: str = "flux") -> None:
    w, h = req.size
    if w % multiple or h % multiple:
        raise UserError(f"{who}: image size {w}x{h} must be a multiple of {multiple} in both sides")


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


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=2)


def empty_cuda_cache() -> None:
    """Give a closed generator's GPU memory back before the next run's generator loads."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
