"""Tiny random OWL-ViT / OWLv2 detectors saved to disk in transformers' layout (no download),
for tests of the spatial metric's owlvit / owlv2 detectors and for plugin authors."""

from __future__ import annotations

import os
from pathlib import Path

WORDS: list[str] = []  # characters only: every name tokenizes, letter by letter


def _tokenizer(d: Path):
    """A CLIP byte-level BPE tokenizer over a handful of words (whole words, no merges needed)."""
    import json

    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for w in WORDS:
        vocab[w + "</w>"] = len(vocab)
    for ch in sorted({c for w in WORDS for c in w}):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (d / "vocab.json").write_text(json.dumps(vocab))
    merges = ["#version: 0.2"]
    (d / "merges.txt").write_text("\n".join(merges) + "\n")
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), pad_token="!"), len(vocab)


def save_tiny_owl(directory: str | os.PathLike, version: int = 1, seed: int = 0) -> Path:
    """Write processor and random weights to ``directory/model``; ``version`` 1 = OWL-ViT,
    2 = OWLv2. Returns that path (what the spatial metric's ``model:`` takes)."""
    import torch
    import transformers as tf

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tokenizer, n_vocab = _tokenizer(d)
    names = ("OwlViT", "OwlViT") if version == 1 else ("Owlv2", "Owlv2")
    Config, Model = getattr(tf, f"{names[0]}Config"), getattr(tf, f"{names[0]}ForObjectDetection")
    ImageProcessor, Processor = getattr(tf, f"{names[0]}ImageProcessor"), getattr(tf, f"{names[0]}Processor")
    if version == 1:
        image_processor = ImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64})
    else:
        image_processor = ImageProcessor(size={"height": 64, "width": 64})
    torch.manual_seed(seed)
    config = Config(
        text_config={"vocab_size": n_vocab, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "pad_token_id": 2,
                     "bos_token_id": 0, "eos_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=16,
    )
    Model(config).save_pretrained(d / "model")
    Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(d / "model")
    return d / "model"
