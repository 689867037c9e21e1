"""A tiny random GroundingDINO saved to disk in transformers' layout (no download), for tests
of the spatial metric's detector path and for third-party plugin authors."""

from __future__ import annotations

import os
from pathlib import Path

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "dog", "cat", "red", "cube"]


def save_tiny_grounding_dino(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write processor and random weights to ``directory/model``; returns that path (what the
    spatial metric's ``model:`` takes)."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}),
        tokenizer=BertTokenizer(str(d / "vocab.txt")),
    )
    torch.manual_seed(seed)
    config = GroundingDinoConfig(
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=10, encoder_n_points=2, decoder_n_points=2,
        num_feature_levels=3,  # 3 Swin stages; a 4th level would be 1x1 at 64 px (GroupNorm needs > 1 value)
        max_text_len=16,
        backbone_config=SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                   image_size=64, out_indices=[2, 3, 4]),
        text_config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 8, "max_position_embeddings": 16, "vocab_size": len(WORDS)},
    )
    GroundingDinoForObjectDetection(config).save_pretrained(d / "model")
    processor.save_pretrained(d / "model")
    return d / "model"
