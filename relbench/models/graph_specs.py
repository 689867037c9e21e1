"""Configuration of the graph conditioning (pydantic only: plugin modules import this at load).

The same specs are written into a checkpoint's relbench_graph_lora.json, so a trainer and
the flux_graph_lora generator agree on what a checkpoint holds.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CGIPSpec(_Spec):
    """CGIP encoder; ``vocab`` (sg2im vocab.json) is required, ``weights`` (sip_vg.pt) optional."""

    kind: Literal["cgip"] = "cgip"
    vocab: str | None = Field(None, description="sg2im vocab.json with object_name_to_idx, pred_name_to_idx")
    weights: str | None = Field(None, description="SGDiff sip_vg.pt (torch checkpoint with 'state_dict')")
    trainable: bool = False
    object_fallback: str | None = Field(None, description="known object used for unknown object names")
    predicate_fallback: str | None = Field(None, description="known predicate used for unknown predicates")
    embed_dim: int = 512
    width: int = 512
    layers: int = 5
    image_node: bool = Field(True, description="add SGDiff's __image__ node and __in_image__ edges")


class TextSpec(_Spec):
    """Open-vocabulary encoder over CLIP-embedded names; always trainable."""

    kind: Literal["text"] = "text"
    embed_dim: int = 512
    width: int = 512
    layers: int = 5


EncoderSpec = CGIPSpec | TextSpec


class LoraSpec(_Spec):
    """LoRA on the double-stream blocks; peft matches ``target_modules()`` with re.fullmatch."""

    rank: int = Field(16, ge=1)
    alpha: float = 16.0
    blocks: list[int] = Field(default_factory=lambda: [7, 8, 9, 10, 11, 12])
    targets: list[str] = Field(
        default_factory=lambda: ["attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"],
        description="module paths inside a block; MLP layers are ff.net.0.proj and ff.net.2",
    )

    def target_modules(self) -> str:
        """e.g. transformer_blocks\\.(7|8|9|10|11|12)\\.attn\\.(to_q|to_k|to_v|to_out\\.0);
        anchored by re.fullmatch, so single_transformer_blocks never match."""
        blocks = "|".join(str(b) for b in self.blocks)
        if all(t.startswith("attn.") for t in self.targets):
            names = "|".join(re.escape(t[len("attn."):]) for t in self.targets)
            return rf"transformer_blocks\.({blocks})\.attn\.({names})"
        names = "|".join(re.escape(t) for t in self.targets)
        return rf"transformer_blocks\.({blocks})\.({names})"


class InjectionSpec(_Spec):
    """Which double-stream blocks see the graph tokens (defaults to the LoRA blocks)."""

    blocks: list[int] = Field(default_factory=lambda: [7, 8, 9, 10, 11, 12])


class _StoredCGIP(CGIPSpec):
    """A checkpoint's CGIP spec carries its vocabulary instead of a path to it."""

    num_objs: int = Field(ge=1)
    num_preds: int = Field(ge=1)
    object_name_to_idx: dict[str, int]
    pred_name_to_idx: dict[str, int]


class _StoredText(TextSpec):
    text_dim: int = Field(ge=1)
    text_encoder: Literal["clip_pooled"] = "clip_pooled"


class CheckpointConfig(_Spec):
    """A flux_graph_lora checkpoint's relbench_graph_lora.json."""

    format: Literal["relbench-graph-lora"]
    format_version: Literal[1]
    base_model: str | None = None
    base_identity: dict | None = None
    width: int = Field(ge=1)
    lora: LoraSpec
    injection: InjectionSpec
    encoder: _StoredCGIP | _StoredText = Field(discriminator="kind")
    extra: dict = Field(default_factory=dict)

    @field_validator("lora", mode="before")
    @classmethod
    def _drop_pattern(cls, value):
        """The stored peft pattern is what ``LoraSpec.target_modules()`` recomputes."""
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "target_modules"}
        return value
