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


def register_tiny_tag(tag: str, hf_hub: str, **cfg) -> None:
    """Give the tiny architecture an open_clip pretrained tag, as open_clip's own table does
    for real ones (``_pcfg``: OpenAI mean/std, bicubic, shortest unless ``cfg`` says
    otherwise), so tag handling is tested without real weights. Test-only: it edits open_clip's
    in-process registry."""
    from open_clip import pretrained

    pretrained._PRETRAINED.setdefault("relbench-tiny-clip", {})[pretrained._clean_tag(tag)] = pretrained._pcfg(
        hf_hub=hf_hub, **cfg)


def put_in_hf_cache(cache_dir: str | os.PathLike, repo: str, filename: str, source: str | os.PathLike) -> Path:
    """Store a weights file the way huggingface_hub does: the bytes in ``blobs/<sha256>``, a
    relative link ``snapshots/<revision>/<filename>`` to it, ``refs/main`` naming the revision.
    Returns the link (the path offline lookups answer)."""
    import hashlib

    data = Path(source).read_bytes()
    root = Path(cache_dir) / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    blob = root / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    link = root / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link
