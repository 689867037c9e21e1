"""Tiny random depth estimators saved to disk in transformers' layout (no download): DPT (the
family of T2I-CompBench++'s DPT-Hybrid MiDaS) and Depth Anything V2, for tests and benchmarks of
the spatial metric's depth judge."""

from __future__ import annotations

import os
from pathlib import Path

#: the tiny models' input side (pixels); the processors resize every image to it
SIDE = 28
#: weight scale: transformers' 0.02 makes outputs vanish (1e-11) through the untrained stack
INIT = 0.2


def save_tiny_dpt(directory: str | os.PathLike, seed: int = 0) -> Path:
    """A 2-layer ViT DPT with its image processor, written to ``directory``; returns it (what
    the spatial metric's ``depth_model:`` takes)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    config = DPTConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=16,
                       image_size=SIDE, patch_size=7, backbone_out_indices=[0, 1, 2, 3],
                       neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=8, head_in_index=-1, initializer_range=INIT)
    return _save(DPTForDepthEstimation(config), _processor(DPTImageProcessor, 0.5, 0.5), directory)


def save_tiny_depth_anything(directory: str | os.PathLike, seed: int = 0, kind: str = "relative") -> Path:
    """A tiny Depth Anything V2 (DINOv2 backbone) with its processor; ``kind`` is the config's
    depth_estimation_type ("relative": inverse depth, "metric": depth in metres)."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=1, initializer_range=INIT,
                            image_size=SIDE, patch_size=7, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=7, reassemble_hidden_size=16,
                                 neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=8, head_hidden_size=8,
                                 depth_estimation_type=kind, max_depth=20 if kind == "metric" else 1,
                                 initializer_range=INIT)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return _save(DepthAnythingForDepthEstimation(config), _processor(DPTImageProcessor, mean, std), directory)


def _processor(cls, mean, std):
    return cls(size={"height": SIDE, "width": SIDE}, keep_aspect_ratio=False, do_rescale=True,
               do_normalize=True, image_mean=mean, image_std=std)


def _save(model, processor, directory) -> Path:
    import torch

    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # a positive last layer: the final ReLU keeps an input-dependent map, not zeros
        last.weight.abs_()
        last.bias.zero_()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    processor.save_pretrained(d)
    return d
