"""A tiny random Mask2Former with COCO's 80 instance classes, saved to disk in transformers'
layout (no download), for tests of the spatial metric's mask2former detector."""

from __future__ import annotations

import os
from pathlib import Path


def save_tiny_mask2former(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write image processor and random weights to ``directory/model``; returns that path."""
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    from relbench.models.coco import COCO_CLASSES

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Mask2FormerConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                                   image_size=64, out_features=["stage1", "stage2", "stage3", "stage4"]),
        feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=16, encoder_layers=1,
        decoder_layers=2, num_attention_heads=2, dim_feedforward=16, num_queries=8,
        id2label=dict(enumerate(COCO_CLASSES)), label2id={n: i for i, n in enumerate(COCO_CLASSES)},
    )
    Mask2FormerForUniversalSegmentation(config).save_pretrained(d / "model")
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32,
                              do_normalize=True).save_pretrained(d / "model")
    return d / "model"
