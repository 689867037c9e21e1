"""A tiny random open_clip model saved to disk the way users keep real checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_checkpoint(directory: str | os.PathLike, seed: int = 0) -> tuple[str, str]:
    """A random tiny open_clip model for tests and benchmarks (no download): registers the
    architecture ``relbench-tiny-clip`` and writes its weights; returns (model, checkpoint)."""
    import open_clip
    import torch

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "relbench-tiny-clip.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(cfg)
    torch.manual_seed(seed)
    model = open_clip.create_model("relbench-tiny-clip", pretrained=None)
    weights = d / "tiny_clip.pt"
    torch.save(model.state_dict(), weights)
    return "relbench-tiny-clip", str(weights)
