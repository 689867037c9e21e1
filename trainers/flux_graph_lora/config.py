"""train.yaml: the validated description of a training run (pydantic only, no torch).

Errors name the file and line, like benchmark.yaml's (the YAML reader and ``locate`` are
relbench.spec.config's). Command-line flags are applied to the parsed mapping before validation,
so ``--epochs -1`` fails the same way ``epochs: -1`` does.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from relbench.models.graph_specs import CGIPSpec, InjectionSpec, LoraSpec, TextSpec
from relbench.spec.config import NegativeSourceSpec

DEFAULT_MODEL = "black-forest-labs/FLUX.1-schnell"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TimestepSpec(_Strict):
    """t in [0, 1] with z_t = (1 - t) z0 + t noise: t = 1 is PURE NOISE, t = 0 the clean latent.

    The seed's [0.5, 1.0] is therefore the noisy half (its comment said "low-noise"); kept as
    the default so runs compare with the seed, but ``logit_normal`` (SD3's choice) or
    [0.0, 0.5] are there to try.
    """

    kind: Literal["uniform", "logit_normal"] = "uniform"
    low: float = Field(0.5, ge=0.0, le=1.0)
    high: float = Field(1.0, ge=0.0, le=1.0)
    mean: float = 0.0  # logit_normal: t = sigmoid(N(mean, std))
    std: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _range(self):
        if self.low >= self.high:
            raise ValueError(f"timesteps: low ({self.low}) must be below high ({self.high})")
        return self


class ClipLossSpec(_Strict):
    """CLIP ranking on the one-step estimate of z0 (decoded by the VAE) under g+:
    max(0, margin - (CLIP(img, p+) - CLIP(img, p-))), CLIP scores scaled as CLIP's logits."""

    model: str = "ViT-B-32"
    checkpoint: str | None = Field(None, description="local open_clip weights file or directory (nothing is downloaded)")
    pretrained: str | None = Field(None, description="open_clip's tag (e.g. openai): its quick_gelu, mean/std and "
                                                     "weights in the Hugging Face cache, as the clip_alignment metric")
    quick_gelu: bool | None = Field(None, description="None: the tag's (OpenAI weights need True)")
    weight: float = Field(0.1, ge=0.0)
    margin: float = 0.0

    @model_validator(mode="after")
    def _weights(self):
        if not self.checkpoint and not self.pretrained:
            raise ValueError("clip: give checkpoint: (a local open_clip weights file or directory) or pretrained: "
                             "(an open_clip tag whose weights are in the Hugging Face cache)")
        return self

    def resolve(self):
        """The clip_alignment metric's resolution (files checked, nothing loaded)."""
        from relbench.errors import UserError
        from relbench.models.clip import resolve

        try:
            return resolve(self.model, self.checkpoint, pretrained=self.pretrained, quick_gelu=self.quick_gelu)
        except UserError as exc:  # the metric's message, under the trainer's key
            raise UserError(str(exc).replace("clip_alignment:", "objective.clip:", 1)) from None


class NegativesSpec(NegativeSourceSpec):
    """g- from the harness's builder (relbench.spec.negatives); one applicable kind drawn per step.
    ``hard`` with ``confusion: RUN_DIR``: the predicates that run's judge saw instead of the
    asked one (docs/train.md)."""

    kinds: list[Literal["swap", "replace", "hard"]] = ["swap", "replace"]


class ObjectiveSpec(_Strict):
    timesteps: TimestepSpec = TimestepSpec()
    rank_weight: float = Field(1.0, ge=0.0, description="lambda_rank; 0 = the seed's pure L_gen")
    rank_margin: float = Field(0.01, ge=0.0, description="m in max(0, m + err(g+) - err(g-))")
    neutral_prompt_prob: float = Field(0.5, ge=0.0, le=1.0, description="p of replacing the relation prompt by the neutral one")
    negatives: NegativesSpec = NegativesSpec()
    clip: ClipLossSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _negatives_shorthand(cls, data):
        """``negatives: hard, confusion: RUN_DIR`` (the seed's wording) is
        ``negatives: {kinds: [hard], confusion: RUN_DIR}``."""
        if isinstance(data, dict) and isinstance(data.get("negatives"), str):
            data = dict(data)
            neg = {"kinds": [data.pop("negatives")]}
            for key in ("confusion", "judge", "top_k", "run"):
                if key in data:
                    neg[key] = data.pop(key)
            data["negatives"] = neg
        return data


class StageSpec(_Strict):
    """A span of epochs with its own loss weights (unset fields: the objective's)."""

    name: str | None = None
    epochs: StrictInt | None = Field(None, ge=1, description="None: until the last epoch (last stage only)")
    rank_weight: float | None = Field(None, ge=0.0)
    clip_weight: float | None = Field(None, ge=0.0)
    neutral_prompt_prob: float | None = Field(None, ge=0.0, le=1.0)


class OptimSpec(_Strict):
    lr: float = Field(1e-4, gt=0.0)
    lr_lora: float | None = Field(None, gt=0.0)
    lr_injector: float | None = Field(None, gt=0.0)
    lr_encoder: float | None = Field(None, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float | None = Field(1.0, gt=0.0)
    warmup_steps: StrictInt = Field(0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"


class CacheSpec(_Strict):
    """Where VAE latents (the mean of the posterior) and prompt embeddings are kept between epochs."""

    latents: Literal["memory", "disk", "off"] = "memory"
    text: Literal["memory", "disk", "off"] = "memory"


class EvalSpec(_Strict):
    """Evaluation through the harness (same runner and metrics as `relbench run`) on val items."""

    every_steps: StrictInt | None = Field(400, ge=1, description="None: only at the end")
    at_end: bool = True
    limit: StrictInt | None = Field(16, ge=1, description="first N val items (all their seeds)")
    seeds: list[StrictInt] = [0]
    metrics: list[str | dict[str, Any]] = ["pair_mse"]
    prompt_mode: Literal["relation", "neutral"] = "neutral"
    resolution: StrictInt | None = None
    batch_size: StrictInt = Field(8, ge=1)
    steps: StrictInt = Field(4, ge=1)
    bootstrap_resamples: StrictInt = Field(200, ge=100)
    best_metric: str | None = Field(None, description="aggregate key in summary.json, e.g. clip_alignment_acc")
    best_mode: Literal["max", "min"] | None = Field(None, description="default: from the metric's higher_is_better")
    patience: StrictInt | None = Field(None, ge=1, description="early stop after N evals without improvement")

    @model_validator(mode="after")
    def _checks(self):
        if self.patience is not None and self.best_metric is None:
            raise ValueError("patience needs best_metric")
        return self


class TrainConfig(_Strict):
    model: str = Field(default_factory=lambda: os.environ.get("RELBENCH_FLUX_MODEL") or DEFAULT_MODEL)
    revision: str | None = None
    train_jsonl: str
    val_jsonl: str | None = None
    images_root: str | None = None
    val_images_root: str | None = None
    output_dir: str = "outputs/graph_lora"
    resolution: StrictInt = Field(256, ge=16, le=4096)
    epochs: StrictInt = Field(20, ge=1)
    max_steps: StrictInt | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: StrictInt = Field(2, ge=1, description="per process; the global batch is this x processes")
    seed: StrictInt = 0
    device: str = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description="frozen base weights")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    max_sequence_length: StrictInt = Field(256, ge=1, le=512)
    encoder: Annotated[CGIPSpec | TextSpec, Field(discriminator="kind")] = TextSpec()
    train_encoder: bool | None = Field(None, description="None: the encoder's default (cgip: its trainable flag, text: yes)")
    lora: LoraSpec = LoraSpec()
    injection: InjectionSpec = InjectionSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    stages: list[StageSpec] = []
    optim: OptimSpec = OptimSpec()
    cache: CacheSpec = CacheSpec()
    eval: EvalSpec | None = EvalSpec()
    log_every: StrictInt = Field(10, ge=1)
    log_rank_acc: bool = Field(True, description="with rank_weight 0, one no-grad g- pass per log step reports rank_acc")
    save_every: StrictInt = Field(200, ge=1, description="steps between checkpoints (also at the end)")
    predicates: list[dict[str, Any]] = []
    progress: bool = True

    @field_validator("resolution")
    @classmethod
    def _multiple(cls, v):
        if v % 16:
            raise ValueError(f"must be a multiple of 16 (FLUX packs 2x2 latents of an 8x VAE), got {v}")
        return v

    @model_validator(mode="after")
    def _stages(self):
        open_ended = [i for i, s in enumerate(self.stages) if s.epochs is None]
        if open_ended and open_ended != [len(self.stages) - 1]:
            raise ValueError("only the last stage may leave epochs unset")
        fixed = sum(s.epochs or 0 for s in self.stages)
        if fixed > self.epochs or (open_ended and fixed >= self.epochs):
            raise ValueError(f"stages take {fixed} epochs but epochs is {self.epochs}")
        return self

    def stage_at(self, epoch: int) -> tuple[int, "StageSpec"]:
        """(index, stage) for a 0-based epoch; epochs past the listed stages belong to the last."""
        start = 0
        for i, s in enumerate(self.stages):
            if s.epochs is None or epoch < start + s.epochs:
                return i, s
            start += s.epochs
        return (len(self.stages) - 1, self.stages[-1]) if self.stages else (0, StageSpec())

    def weights_at(self, epoch: int) -> dict:
        i, s = self.stage_at(epoch)
        o = self.objective
        pick = lambda v, d: d if v is None else v  # noqa: E731
        return {
            "stage": s.name or f"stage{i + 1}",
            "rank_weight": pick(s.rank_weight, o.rank_weight),
            "clip_weight": pick(s.clip_weight, o.clip.weight if o.clip else 0.0),
            "neutral_prompt_prob": pick(s.neutral_prompt_prob, o.neutral_prompt_prob),
        }


# ---------------------------------------------------------------------------------------------


def parse_train_config(data: Any, source: str = "train.yaml", lines: dict | None = None) -> TrainConfig:
    from relbench.spec.config import validate_mapping

    return validate_mapping(TrainConfig, data, source, lines, "training config", "train_jsonl, output_dir, ...",
                            tags=("cgip", "text"))


def load_train_config(path: str | None, overrides: dict | None = None) -> tuple[TrainConfig, str]:
    """Read ``path`` (optional), apply ``overrides`` (dotted keys allowed: 'lora.rank'), validate."""
    from relbench.spec.config import read_yaml_mapping

    data: dict = {}
    lines: dict = {}
    source = str(path) if path else "command line"
    if path:
        data, lines = read_yaml_mapping(path, "training config", "train_jsonl, output_dir, ...")
    for dotted, value in (overrides or {}).items():
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node.get(k, {}), dict) else node
        node[keys[-1]] = value
        lines = {k: v for k, v in lines.items() if tuple(keys) != k[: len(keys)]}
    return parse_train_config(data, source, lines), source
