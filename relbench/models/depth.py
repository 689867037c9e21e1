"""Monocular depth estimators for the spatial metric's depth judge: image -> nearness map.

Every estimator answers one float32 map per image, shape (H, W) of that image, indexed
[row, column], on one convention: **larger = nearer** (relative inverse depth). What each model
outputs and how it is brought to that convention:

- ``dpt`` (``DPTForDepthEstimation``; default ``Intel/dpt-hybrid-midas``, the DPT-Hybrid MiDaS
  of T2I-CompBench++'s 3D spatial score): MiDaS relative inverse depth (disparity up to an
  unknown scale and shift), larger = nearer: used as it is.
- ``depth_anything`` (``DepthAnythingForDepthEstimation``; default
  ``depth-anything/Depth-Anything-V2-Small-hf``): the relative checkpoints
  (``depth_estimation_type: relative``) output relative inverse depth, larger = nearer, used as
  it is; the metric ones (``Depth-Anything-V2-Metric-*``, ``depth_estimation_type: metric``)
  output depth in metres, larger = farther, and are negated.

The model's output (at its input resolution) is resized to the image with bicubic
interpolation (transformers' ``post_process_depth_estimation``). Weights come from a local
directory or the Hugging Face cache only; a missing model is one line saying how to get it.
Backends register by name (``@register_depth``) so a test or a benchmark can add its own.
"""

from __future__ import annotations

from typing import Any, Callable

from relbench.errors import UserError
from relbench.models.hub import DOWNLOAD, first_line

DEPTH_MODELS: dict[str, type["DepthModel"]] = {}


def register_depth(name: str) -> Callable[[type], type]:
    def deco(cls):
        cls.name = name
        DEPTH_MODELS[name] = cls
        return cls

    return deco


class DepthModel:
    """Base class; ``options`` are the spatial metric's arguments (depth_model, device, batch_size)."""

    name = ""
    libraries: tuple[str, ...] = ()
    #: the model id used when ``depth_model`` is not set
    default_model = ""

    def __init__(self, options: Any, device: str | None = None):
        self.options = options
        self.device = device

    def nearness_many(self, images: list) -> list:
        """One (H, W) float32 array per uint8 RGB image (H, W, 3): larger = nearer."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    @classmethod
    def model_id(cls, options: Any) -> str:
        return getattr(options, "depth_model", None) or cls.default_model

    @classmethod
    def identity(cls, options: Any) -> Any:
        """The model's weights (sha256 of its directory), computed without loading it: part of
        the spatial metric's fingerprint, so replaced weights rescore."""
        from relbench.models.hub import weights_sha256

        return {"model": cls.name, "weights": weights_sha256(cls.model_id(options))}


def build_depth(name: str, options: Any, device: str | None = None) -> DepthModel:
    if name not in DEPTH_MODELS:
        raise UserError(f"spatial: unknown depth model {name!r} (known: none, {', '.join(sorted(DEPTH_MODELS))})")
    return DEPTH_MODELS[name](options, device)


class _TransformersDepth(DepthModel):
    """A transformers depth-estimation model and its image processor, offline."""

    libraries = ("transformers",)
    model_class = ""

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        import torch
        import transformers
        from transformers import AutoImageProcessor

        self.model_name = self.model_id(options)
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.model_name, local_files_only=True)
            self.model = getattr(transformers, self.model_class).from_pretrained(self.model_name, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"spatial: depth model {self.model_name!r} ({self.model_class}) is not available locally "
                f"({first_line(exc)}); "
                f"no download is attempted: fetch it once ({DOWNLOAD} {self.default_model}) or save_pretrained() "
                f"it to a directory, then set the spatial metric's depth_model: to that id or path"
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.batch_size = int(getattr(options, "batch_size", 8))
        self.sign = self.output_sign(self.model.config)

    @staticmethod
    def output_sign(config) -> float:
        """+1 when the model outputs inverse depth (larger = nearer), -1 for metric depth."""
        return 1.0

    def nearness_many(self, images):
        import numpy as np  # writable copies: the torch conversion warns about read-only arrays
        import torch

        out: list = [None] * len(images)
        by_size: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):  # one batch per image size: processors keep aspect ratios
            by_size.setdefault(im.shape[:2], []).append(i)
        for (h, w), idx in by_size.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                inputs = self.processor(images=[np.array(images[i]) for i in chunk], return_tensors="pt").to(self.device)
                with torch.no_grad():
                    pred = self.model(**inputs).predicted_depth.float()
                maps = torch.nn.functional.interpolate(pred.unsqueeze(1), size=(h, w), mode="bicubic",
                                                       align_corners=False)[:, 0]
                for i, m in zip(chunk, (self.sign * maps).cpu().numpy()):
                    out[i] = m
        return out

    def close(self) -> None:
        self.model = None


@register_depth("dpt")
class DptDepth(_TransformersDepth):
    """DPT (MiDaS): relative inverse depth, larger = nearer."""

    model_class = "DPTForDepthEstimation"
    default_model = "Intel/dpt-hybrid-midas"


@register_depth("depth_anything")
class DepthAnythingDepth(_TransformersDepth):
    """Depth Anything (V2): relative checkpoints give inverse depth, metric ones metres (negated)."""

    model_class = "DepthAnythingForDepthEstimation"
    default_model = "depth-anything/Depth-Anything-V2-Small-hf"

    @staticmethod
    def output_sign(config) -> float:
        kind = getattr(config, "depth_estimation_type", "relative")
        if kind not in ("relative", "metric"):
            raise UserError(f"spatial: depth model has depth_estimation_type {kind!r} (known: relative, metric)")
        return 1.0 if kind == "relative" else -1.0
