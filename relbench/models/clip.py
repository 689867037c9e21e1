"""open_clip loading from local files only, and an encoder that encodes each text/image once.

Why a wrapper: open_clip resolves pretrained *tags* by downloading; a benchmark must never do
that silently, so the architecture is built with ``pretrained=None`` and the weights come from a
local checkpoint file (``open_clip.load_checkpoint``) or a local open_clip directory
(``open_clip_config.json`` + weights, open_clip's ``local-dir:`` schema).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from relbench.errors import UserError

WEIGHT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
HOW = ("set metrics: clip_alignment: checkpoint: to a local open_clip weights file (e.g. "
       "open_clip_pytorch_model.bin of laion/CLIP-ViT-B-32-laion2B-s34B-b79K) or a directory holding one; "
       "nothing is downloaded")


def resolve(model: str, checkpoint: str | None) -> tuple[str, str | None]:
    """(name for open_clip.create_model, weights file or None when a local-dir holds them)."""
    if not checkpoint:
        raise UserError(f"clip_alignment: no checkpoint given; {HOW}")
    path = Path(os.path.expanduser(str(checkpoint)))
    if not path.exists():
        raise UserError(f"clip_alignment: checkpoint {str(checkpoint)!r} not found; {HOW}")
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            if _find_weights(path) is None:
                raise UserError(f"clip_alignment: {path} has open_clip_config.json but no weights file; {HOW}")
            return f"local-dir:{path}", None
        weights = _find_weights(path)
        if weights is None:
            raise UserError(f"clip_alignment: no weights file (*.safetensors, *.bin, *.pth, *.pt) in {path}; {HOW}")
        path = weights
    import open_clip

    name = model.replace("/", "-")
    if open_clip.get_model_config(name) is None:
        raise UserError(
            f"clip_alignment: unknown open_clip architecture {model!r} (e.g. ViT-B-32, ViT-L-14; "
            f"see open_clip.list_models())"
        )
    return name, str(path)


def _find_weights(directory: Path) -> Path | None:
    for n in WEIGHT_NAMES:
        if (directory / n).is_file():
            return directory / n
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in directory.glob(ext))
    return found[0] if found else None


def identity(model: str, checkpoint: str | None) -> dict:
    """Cheap identity of the weights for fingerprints: resolved name, file name and size."""
    name, path = resolve(model, checkpoint)
    if path is None:
        path = str(_find_weights(Path(name.split(":", 1)[1])))
    return {"model": name if not name.startswith("local-dir:") else "local-dir", "file": Path(path).name,
            "bytes": Path(path).stat().st_size}


def load(model: str, checkpoint: str | None, device: str = "cpu"):
    """(model in eval mode, image preprocess for PIL images, tokenizer)."""
    name, path = resolve(model, checkpoint)
    import open_clip

    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None, pretrained_image=False, pretrained_text=False, device="cpu"
        )
        if path is not None:
            open_clip.load_checkpoint(clip, path)
    except (RuntimeError, ValueError, KeyError, OSError, AssertionError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"clip_alignment: cannot load {checkpoint!r} as open_clip {model!r}: {first}") from None
    return clip.to(device).eval(), preprocess, open_clip.get_tokenizer(name)


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
