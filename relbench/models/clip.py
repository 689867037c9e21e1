"""open_clip loading from local files only, and an encoder that encodes each text/image once.

Why a wrapper: open_clip resolves pretrained *tags* by downloading, and it builds an
architecture's defaults whatever the weights were trained with (``ViT-B-32`` + OpenAI weights
gives GELU instead of QuickGELU and silently different scores). Here the architecture is built
with ``pretrained=None``; a tag (``pretrained: openai``) only selects open_clip's pretrained
config (quick_gelu, mean/std, resize mode, interpolation) and where the weights sit in the
Hugging Face cache, read offline. Weights come from a local file, a local open_clip directory
(``open_clip_config.json`` + weights, open_clip's ``local-dir:`` schema) or that cache, and are
read with ``weights_only=True`` (or safetensors) before open_clip sees them, so a damaged or
pickle-payload file is one line and never runs code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from relbench.errors import UserError
from relbench.models.hub import DOWNLOAD
from relbench.io.safetensors_file import check_weights, is_index_buffer, not_floating

WEIGHT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
HOW = ("set metrics: clip_alignment: args: pretrained: to open_clip's tag (e.g. openai, laion2b_s34b_b79k) with its "
       "weights in the Hugging Face cache, or checkpoint: to a local open_clip weights file or a directory holding "
       "one; nothing is downloaded")
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
# integer tensors a CLIP state dict may hold that are no weights: HF text towers' positions,
# BatchNorm's counter (ResNet towers), the scalars of OpenAI's original files
INDEX_BUFFERS = ("position_ids", "num_batches_tracked", "input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class ClipSpec:
    """What to build: the open_clip name (or ``local-dir:...``), the weights file, and the
    quick_gelu / preprocessing that go with those weights (None: the architecture's own)."""

    name: str
    weights: Path
    quick_gelu: bool | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    tag: str | None = None
    config: Path | None = None  # open_clip_config.json of a local directory


def _path(text: str) -> Path:
    return Path(os.path.expanduser(str(text)))


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix in (".bin", ".pt", ".pth", ".safetensors", ".npz")


def resolve(model: str, checkpoint: str | None, pretrained: str | None = None, quick_gelu: bool | None = None,
            preprocess: Mapping[str, Any] | None = None) -> ClipSpec:
    """Everything needed to build the model, checked before anything loads.

    ``pretrained`` is open_clip's word: a tag known for ``model`` (its pretrained config sets
    quick_gelu and preprocessing) or, as in open_clip, a weights path. Explicit ``quick_gelu``
    and ``preprocess`` win over the tag's values."""
    import open_clip

    name = model.replace("/", "-")
    tag_cfg: dict = {}
    if pretrained:
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) or {}
        if not tag_cfg and open_clip.get_model_config(name) is not None and not _looks_like_path(pretrained):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise UserError(f"clip_alignment: open_clip knows no pretrained tag {pretrained!r} for {name} "
                            f"(known: {tags}); for a weights file use checkpoint: /path")
        if not tag_cfg:  # open_clip's other use of the word: a weights path
            if checkpoint:
                raise UserError(f"clip_alignment: pretrained: {pretrained!r} is not a tag of {name} and checkpoint: "
                                f"is set too; give the weights file once, as checkpoint:")
            checkpoint, pretrained = pretrained, None
    config = None
    if checkpoint:
        path = _path(checkpoint)
        if not path.exists():
            hint = ""
            if open_clip.get_pretrained_cfg(name, str(checkpoint)):
                hint = f" ({checkpoint!r} is an open_clip tag: write pretrained: {checkpoint})"
            raise UserError(f"clip_alignment: checkpoint {str(checkpoint)!r} not found{hint}; {HOW}")
        if path.is_dir():
            weights = _find_weights(path)
            if (path / "open_clip_config.json").is_file():
                if weights is None:
                    raise UserError(f"clip_alignment: {path} has open_clip_config.json but no weights file; {HOW}")
                name, config = f"local-dir:{path}", path / "open_clip_config.json"
            elif weights is None:
                raise UserError(f"clip_alignment: no weights file (*.safetensors, *.bin, *.pth, *.pt) in {path}; {HOW}")
            path = weights
    elif pretrained:
        path = _from_hf_cache(name, pretrained, tag_cfg)
    else:
        raise UserError(f"clip_alignment: no weights given; {HOW}")
    if config is None and open_clip.get_model_config(name) is None:
        raise UserError(
            f"clip_alignment: unknown open_clip architecture {model!r} (e.g. ViT-B-32, ViT-L-14; "
            f"see open_clip.list_models())"
        )
    if quick_gelu is None and tag_cfg.get("quick_gelu"):
        quick_gelu = True
    pre = {k: tag_cfg[k] for k in PREPROCESS_KEYS if tag_cfg.get(k) is not None}
    pre.update({k: v for k, v in (preprocess or {}).items() if v is not None})
    pre = {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in pre.items()}
    # absolute, links kept: the HF cache links snapshots/<rev>/open_clip_model.safetensors to a
    # suffix-less blob, and the file name's suffix decides how the weights are read
    return ClipSpec(name, Path(os.path.abspath(path)), quick_gelu, pre, pretrained, config)


def _from_hf_cache(name: str, tag: str, cfg: dict) -> Path:
    """The tag's weights in the Hugging Face cache, read offline (as open_clip would name them)."""
    from open_clip.pretrained import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(str(cfg.get("hf_hub") or ""))  # "org/name/" or "org/name/file", as open_clip splits it
    repo = repo.strip("/")
    names = [n for n in (HF_SAFE_WEIGHTS_NAME, filename or HF_WEIGHTS_NAME, HF_WEIGHTS_NAME) if n]
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for n in dict.fromkeys(names):
            hit = try_to_load_from_cache(repo, n)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    where = f"{repo} ({' or '.join(dict.fromkeys(names))})" if repo else "no Hugging Face repository"
    raise UserError(
        f"clip_alignment: weights of {name} pretrained {tag!r} are not in the Hugging Face cache ({where}); nothing is "
        f"downloaded: fetch once ({DOWNLOAD} {repo or '<repo>'} {names[0]}) or set checkpoint: /path"
    )


def _find_weights(directory: Path) -> Path | None:
    for n in WEIGHT_NAMES:
        if (directory / n).is_file():
            return directory / n
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in directory.glob(ext))
    return found[0] if found else None


_CHECKED: set[str] = set()  # sha256 of files check_weights_file passed in this process


def identity(model: str, checkpoint: str | None, **kw) -> dict:
    """What the scores depend on, for fingerprints: the weights' and config's content hashes
    and the resolved quick_gelu / preprocessing (a replaced file changes the hash)."""
    from relbench.io.content_hash import file_sha256

    spec = resolve(model, checkpoint, **kw)
    digest = file_sha256(spec.weights)
    if digest not in _CHECKED:  # the harness fingerprints at plan time: a bad file stops the run before images
        check_weights_file(spec.weights)
        _CHECKED.add(digest)
    return {"model": spec.name if spec.config is None else "local-dir", "weights_sha256": digest,
            "config_sha256": None if spec.config is None else file_sha256(spec.config),
            "quick_gelu": spec.quick_gelu, "preprocess": dict(spec.preprocess)}


def check_weights_file(path: Path) -> None:
    """Open a weights file without running any code it may hold (safetensors header, or
    torch.load with weights_only=True, memory-mapped so a large file costs no copy): a damaged
    or pickle-payload file is one line naming it, before open_clip reads it. Every tensor must
    be a finite float (integer weights would be cast silently, NaN ones score 0.5 everywhere),
    bar the integer buffers ``INDEX_BUFFERS`` names."""
    import pickle
    import re
    import warnings

    import torch

    if path.suffix in (".npz", ".npy"):  # big_vision (SigLIP) numpy files: np.load never unpickles
        return
    if path.suffix == ".safetensors":
        if not check_weights(path, "clip_alignment", INDEX_BUFFERS):  # header, dtypes, NaN: one line each
            raise UserError(f"clip_alignment: {path} holds no tensors")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes: the verdict below says it all
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
                if "mmap" not in str(exc):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors, truncated zips, EOF... all mean a bad file
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        if isinstance(exc, pickle.UnpicklingError):  # torch's text opens with advice to disable the guard
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
            why = f"pickled {found.group(1)}" if found else next((ln for ln in lines if ln.startswith("Unsupported")),
                                                                  "not a pickle of tensors")
            what = f"refused by weights_only loading, nothing in it was run ({why[:120]})"
        else:
            what = f"{type(exc).__name__}: {lines[0].split('. ')[0][:160]}"
        raise UserError(
            f"clip_alignment: cannot read weights file {path}: {what}; expected a state dict saved by "
            f"torch.save or a .safetensors file"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"clip_alignment: {path} holds no state dict of tensors (a {type(state).__name__})")
    for name, t in state.items():  # load_state_dict would cast integers into weights silently
        if t.is_floating_point():
            if not bool(torch.isfinite(t).all()):
                raise UserError(f"clip_alignment: {path}: tensor {name} holds NaN or inf; the weights are damaged")
        elif t.is_complex() or t.dtype == torch.bool or not is_index_buffer(name, INDEX_BUFFERS):
            raise not_floating("clip_alignment", path, name, str(t.dtype).removeprefix("torch."))


def load(model: str, checkpoint: str | None, device: str = "cpu", **kw):
    """(model in eval mode, image preprocess for PIL images, tokenizer); ``kw``: resolve()'s
    pretrained / quick_gelu / preprocess."""
    spec = resolve(model, checkpoint, **kw)
    check_weights_file(spec.weights)  # a bad or malicious file stops here, before open_clip reads it
    import open_clip

    pre = spec.preprocess
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            spec.name, pretrained=None, pretrained_image=False, pretrained_text=False, device="cpu",
            force_quick_gelu=bool(spec.quick_gelu),
            image_mean=pre.get("mean"), image_std=pre.get("std"),
            image_interpolation=pre.get("interpolation"), image_resize_mode=pre.get("resize_mode"),
        )
        open_clip.load_checkpoint(clip, str(spec.weights), weights_only=True)
    except (RuntimeError, ValueError, KeyError, OSError, AssertionError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"clip_alignment: cannot load {str(spec.weights)!r} as open_clip {model!r}: {first}") from None
    return clip.to(device).eval(), preprocess, tokenizer(spec)


def tokenizer(spec: ClipSpec):
    """open_clip's tokenizer for the model; a Hugging Face tokenizer (SigLIP, multilingual
    models) is read from the local directory or the HF cache only."""
    import open_clip

    cfg = open_clip.get_model_config(spec.name) if spec.config is None else (
        json.loads(spec.config.read_text()).get("model_cfg") or {})
    hf_name = ((cfg or {}).get("text_cfg") or {}).get("hf_tokenizer_name")
    if not hf_name:
        return open_clip.get_tokenizer(spec.name)
    try:
        return open_clip.get_tokenizer(spec.name, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(
            f"clip_alignment: the tokenizer of {spec.name} ({hf_name}) is not in the Hugging Face cache ({first}); "
            f"nothing is downloaded: fetch it once ({DOWNLOAD} {hf_name})"
        ) from None


class ClipEncoder:
    """Normalised CLIP features, cached per text and per image key, encoded in batches.

    ``counts`` says how many texts and images went through the towers, so a benchmark can
    compare against the naive protocol (4 image + 4 text encodings per case).
    """

    def __init__(self, model, preprocess, tokenizer, device: str = "cpu", batch_size: int = 32):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size = device, batch_size
        self.text: dict[str, Any] = {}
        self.image: dict[str, Any] = {}
        self.counts = {"image": 0, "text": 0}

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    def encode_texts(self, texts: Iterable[str]) -> None:
        import torch

        todo = list(dict.fromkeys(t for t in texts if t not in self.text))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            with torch.no_grad():
                feats = self.model.encode_text(self.tokenizer(chunk).to(self.device)).float()
            feats = torch.nn.functional.normalize(feats, dim=-1).cpu()
            self.text.update(zip(chunk, feats))
            self.counts["text"] += len(chunk)

    def encode_images(self, keyed: Iterable[tuple[str, Callable[[], Any]]]) -> None:
        """``keyed``: (key, loader) pairs; the loader is called only for keys not yet encoded."""
        import torch
        from PIL import Image

        todo = dict((k, load) for k, load in keyed if k not in self.image)
        keys = list(todo)
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            batch = torch.stack([self.preprocess(Image.fromarray(todo[k]())) for k in chunk]).to(self.device)
            with torch.no_grad():
                feats = self.model.encode_image(batch).float()
            feats = torch.nn.functional.normalize(feats, dim=-1).cpu()
            self.image.update(zip(chunk, feats))
            self.counts["image"] += len(chunk)

    def score(self, image_key: str, text: str) -> float:
        """CLIP score: logit_scale.exp() * cosine(image, text), as CLIP's own logits."""
        return self.logit_scale * float(self.image[image_key] @ self.text[text])
