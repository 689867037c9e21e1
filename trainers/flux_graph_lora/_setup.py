"""Building a trainer: the checks that run before the model loads (the output directory against
--resume, a resumed config against its checkpoint), the pipeline, and the trainable parts with
their optimizer and schedule."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from relbench.errors import UserError
from relbench.trainers.flux_graph_lora._checkpoint import LAST
from relbench.trainers.flux_graph_lora._step import step_module
from relbench.trainers.flux_graph_lora.log import LOG, log_records

#: what a resumed config must share with its checkpoint for the resume to be exact
RESUMABLE_KEYS = ("model", "encoder", "lora", "injection", "batch_size", "seed", "resolution", "train_jsonl")


class Setup:
    """The setup methods of ``Trainer``."""

    def _check_output_dir(self, resume: bool) -> Path | None:
        """The output directory agrees with --resume, and a resumed config with its checkpoint;
        returns the checkpoint to resume from."""
        from relbench.models.graph_lora_ckpt import read_checkpoint
        from relbench.trainers.state import existing_checkpoint, read_state

        ck = existing_checkpoint(self.out / LAST)
        if not resume:
            if ck is not None:
                raise UserError(f"{self.out / LAST} already holds a checkpoint; pass --resume to continue it, "
                                f"or another --output-dir")
            return None
        if ck is None:
            raise UserError(f"--resume: no checkpoint in {self.out / LAST} (start without --resume)")
        read_state(ck)  # a trainer checkpoint, with its state
        _, torn = log_records(self.out / LOG)
        if torn:
            self.notes.append(f"note: {self.out / LOG}: dropped a torn last line (line {torn}, what a killed writer "
                              f"leaves); the steps after the checkpoint are redone")
        extra = read_checkpoint(ck).config.get("extra", {})
        saved = extra.get("config", {})
        now = self.cfg.model_dump(mode="json")
        changed = [d for k in RESUMABLE_KEYS if k in saved for d in _differences(k, saved[k], now[k])]
        if changed:
            diffs = "; ".join(f"{k}: {_short(a)} in the checkpoint, {_short(b)} now" for k, a, b in changed)
            raise UserError(f"--resume: {ck} was trained with other values ({diffs}); an exact resume needs the "
                            f"same values (or start a new --output-dir)")
        # the same confusion path with other contents would draw other g- from here on
        was = (extra.get("negative_source") or {}).get("summary_sha256")
        is_ = self.negative_source.identity.get("summary_sha256") if self.negative_source is not None else None
        if was != is_:
            raise UserError(f"--resume: {ck} was trained with hard negatives from a summary.json of sha256 {was}, "
                            f"objective.negatives.confusion now holds {is_}; an exact resume needs the same file")
        return ck

    def _pipeline(self, pipe):
        import torch

        from relbench.models.flux import FluxArgs, load_pipeline
        from relbench.models.pipeline import module_digest, resolve_model_dir

        cuda = self.device.startswith("cuda")
        self.base_model = self.cfg.model
        if self.cfg.dtype == "auto":
            dtype = torch.bfloat16 if cuda else torch.float32
        else:
            dtype = getattr(torch, self.cfg.dtype)
        if pipe is None:
            model_dir, ident = resolve_model_dir(FluxArgs(model=self.cfg.model, revision=self.cfg.revision), "train")
            pipe = load_pipeline(model_dir, dtype, self.device, cpu_offload=False, who="train",
                                 progress=self.cfg.progress and sys.stderr.isatty() and self.dist.is_main)
            if ident["source"] == "local":  # recorded in checkpoints: absolute, so runs elsewhere find it
                self.base_model = str(model_dir.resolve())
        else:
            pipe.to(self.device)
            ident = {"source": "injected", **{n: module_digest(getattr(pipe, n)) for n in ("vae", "text_encoder", "text_encoder_2")
                                              if getattr(pipe, n, None) is not None}}
        for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
            m = getattr(pipe, name, None)
            if m is not None:
                m.requires_grad_(False).eval()
        mp = self.cfg.mixed_precision
        if mp == "auto":
            mp = "bf16" if cuda and pipe.transformer.dtype != torch.float32 else "no"
        self.autocast_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mp]
        return pipe, ident

    def _build_parts(self):
        import torch

        from relbench.models.graph_encoders import build_encoder, clip_pooled_embedder
        from relbench.models.graph_injection import attach_graph_lora
        from relbench.trainers.flux_graph_lora._cache import LatentCache, TextCache
        from relbench.trainers.flux_graph_lora._data import check_vocabulary

        cfg, pipe = self.cfg, self.pipe
        transformer = pipe.transformer
        embed_fn, text_dim = clip_pooled_embedder(pipe) if cfg.encoder.kind == "text" else (None, None)
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed)
            encoder = build_encoder(cfg.encoder, embed_fn, text_dim)
            check_vocabulary(encoder, self.examples)
            self.graph_lora = attach_graph_lora(transformer, encoder, cfg.lora, cfg.injection)
        if cfg.train_encoder is not None:
            encoder.requires_grad_(cfg.train_encoder)
        if hasattr(encoder, "logit_scale"):
            encoder.logit_scale.requires_grad_(False)  # kept for SGDiff's keys, never used
        self.graph_lora.float()  # trainable parts in float32; the frozen base stays in its dtype
        for p in transformer.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        if cfg.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        self.model = step_module()(transformer, self.graph_lora)
        self.ddp = self.model
        if self.dist.world_size > 1:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs
            from torch.nn.parallel import DistributedDataParallel as DDP

            # the 12B frozen parameters stay out of DDP's broadcast (prepare has no option for it)
            frozen = [n for n, p in self.model.named_parameters() if not p.requires_grad]
            frozen += [n for n, _ in self.model.named_buffers()]
            DDP._set_params_and_buffers_to_ignore_for_model(self.model, frozen)
            # precision and compilation are the config's (_step's autocast), whatever the launch's flags say
            acc = Accelerator(cpu=not self.device.startswith("cuda"), mixed_precision="no", dynamo_backend="no",
                              device_placement=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
            self.ddp = acc.prepare_model(self.model)
        lora = [p for p in transformer.parameters() if p.requires_grad]
        groups = [("lora", lora, cfg.optim.lr_lora), ("injector", list(self.graph_lora.injector.parameters()), cfg.optim.lr_injector),
                  ("encoder", [p for p in encoder.parameters() if p.requires_grad], cfg.optim.lr_encoder)]
        o = cfg.optim
        self.opt = torch.optim.AdamW([{"params": ps, "lr": lr or o.lr, "name": n} for n, ps, lr in groups if ps],
                                     lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        # not diffusers' get_scheduler: its warmup starts at lr 0 (step / warmup), so the first step would
        # train nothing; ours starts at lr / warmup ((step + 1) / warmup), which the checkpoints record
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        ident = [self.base_ident, str(pipe.vae.dtype)]
        self.latents = LatentCache(cfg.cache.latents, self.out / "cache" / "latents", ident, pipe, cfg.resolution)
        self.texts = TextCache(cfg.cache.text, self.out / "cache" / "text", ident, pipe, cfg.max_sequence_length)
        self.clip = None
        if cfg.objective.clip is not None:
            from relbench.trainers.flux_graph_lora.clip_rank import ClipRanker

            self.clip = ClipRanker(cfg.objective.clip, self.device)

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            span = max(1, self.total_steps - o.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - o.warmup_steps) / span)))
        return 1.0


def _differences(key: str, a, b) -> list[tuple]:
    """(dotted key, old, new) for each differing leaf of two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(f"{key}.{k}", a.get(k), b.get(k))]
    return [] if a == b else [(key, a, b)]


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."




def seed_global_generators(seed: int) -> None:
    """Seed torch's and Python's global generators. Why: both start from a fresh random seed in
    every process (torch 2.14 too), and a checkpoint stores their states for an exact resume, so
    unseeded, the same config wrote different trainer_state bytes each run. (Every draw that
    shapes the weights uses the trainer's own seeded generators; a resume restores these states
    from the checkpoint afterwards.)"""
    import random

    import torch

    from relbench.trainers.state import sample_seed

    torch.manual_seed(sample_seed(seed, "global"))
    random.seed(sample_seed(seed, "global-python"))
