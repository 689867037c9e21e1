"""`relbench train`: teacher-forced training of flux_graph_lora's graph encoder, injector and LoRA.

Per sample: the photo's latent z0, noise eps and t give z_t = (1 - t) z0 + t eps (t = 1 is pure
noise). L_gen is the MSE of the predicted velocity against eps - z0 under the true graph g+.
L_rel_rank (what the seed lacked) runs the same z_t, t and prompt under a negative g- from the
harness's builder and asks err(g+) + m <= err(g-); both halves share the text, so only the
graph can make the difference. With probability p the prompt is the neutral one ("a photo of a
dog and a horse"), so the relation has to come from the graph.

Everything random is drawn from generators seeded by (seed, step, position in the global
batch), never from a process-wide stream: a run resumed from a checkpoint, or split over N
processes with batch/N each, draws exactly the same t, noise, negatives and prompts.

torch and diffusers are imported inside functions; this module is safe to import anywhere.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from relbench.engine.distributed import topology
from relbench.errors import UserError

LAST, BEST, LOG, EVAL_DIR = "last", "best", "train_log.jsonl", "eval"
RESUMABLE_KEYS = ("model", "encoder", "lora", "injection", "batch_size", "seed", "resolution", "train_jsonl")


@dataclass
class GraphBatch:
    """Graphs passed through DDP's forward untouched (DDP recurses into lists and tuples)."""

    graphs: list


def _step_module():
    import torch
    from torch import nn

    class StepModel(nn.Module):
        """transformer + graph parts as one module, so DDP syncs every trainable parameter.

        The graph tokens stay set on the injector after forward (``clear`` removes them): with
        gradient checkpointing the blocks are recomputed during backward and must see them.
        """

        def __init__(self, transformer, graph_lora):
            super().__init__()
            self.transformer, self.graph_lora = transformer, graph_lora

        def forward(self, hidden, timestep, embeds, pooled, img_ids, txt_ids, graphs: GraphBatch):
            self.graph_lora.injector.set_tokens(*self.graph_lora.tokens(graphs.graphs))
            guidance = None
            if self.transformer.config.guidance_embeds:
                guidance = torch.full((hidden.shape[0],), 3.5, device=hidden.device, dtype=hidden.dtype)
            return self.transformer(hidden_states=hidden, timestep=timestep, guidance=guidance, pooled_projections=pooled,
                                    encoder_hidden_states=embeds, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]

        def clear(self):
            self.graph_lora.injector.clear()

    return StepModel


class Diverged(Exception):
    pass


def training_attention_backends(device_type: str) -> list:
    """The attention kernels a training step may use: every one but cuDNN's on CUDA.

    On an H200 with torch 2.11 the cuDNN attention backward of full-size FLUX.1-schnell returned NaN
    (then CUBLAS_STATUS_EXECUTION_FAILED) on the first step, with and without relbench's graph
    parts; flash / memory-efficient attention trained at 0.19 s/step (benchmarks/gpu_train.py).
    The backend is picked at forward and reused by backward, so the forward pass is where it is set.
    """
    from torch.nn.attention import SDPBackend

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return backends if device_type == "cuda" else backends + [SDPBackend.CUDNN_ATTENTION]


class Trainer:
    def __init__(self, cfg, pipe=None, source: str = "train.yaml", resume: bool = False):
        from relbench.spec.predicates import load_vocabulary
        from relbench.trainers._train_data import load_examples

        self.cfg, self.source, self.out = cfg, source, Path(cfg.output_dir)
        self.dist = topology(cfg.device)
        self.device = self.dist.device
        self.vocab = load_vocabulary(cfg.predicates)
        neg = cfg.objective.negatives
        self.examples = load_examples(cfg.train_jsonl, self.vocab, cfg.images_root, list(neg.kinds), neg.seed)
        self.global_batch = cfg.batch_size * self.dist.world_size
        if len(self.examples) < self.global_batch:
            raise UserError(f"{cfg.train_jsonl}: {len(self.examples)} examples, fewer than one global batch "
                            f"({cfg.batch_size} x {self.dist.world_size} processes)")
        self.steps_per_epoch = len(self.examples) // self.global_batch  # the incomplete tail is dropped
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.notes: list[str] = []
        if cfg.max_steps is not None:
            if cfg.max_steps > self.total_steps:
                self.notes.append(f"note: --max-steps {cfg.max_steps} is beyond {cfg.epochs} epochs x "
                                  f"{self.steps_per_epoch} steps; training stops at step {self.total_steps} "
                                  f"(raise --epochs to go further)")
            self.total_steps = min(self.total_steps, cfg.max_steps)
        from relbench.trainers._train_eval import check_eval

        self.best_spec = check_eval(cfg, self.out / EVAL_DIR)
        if cfg.objective.clip is not None:
            cfg.objective.clip.resolve()  # weights found before the pipeline loads
        self.resume = resume
        self.resume_from = self._check_output_dir(resume)  # before minutes of model loading
        _seed_global_generators(cfg.seed)
        self.pipe, self.base_ident = self._pipeline(pipe)
        self._build_parts()

    # ------------------------------------------------------------------ setup
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
        _, torn = _log_records(self.out / LOG)
        if torn:
            self.notes.append(f"note: {self.out / LOG}: dropped a torn last line (line {torn}, what a killed writer "
                              f"leaves); the steps after the checkpoint are redone")
        saved = read_checkpoint(ck).config.get("extra", {}).get("config", {})
        now = self.cfg.model_dump(mode="json")
        changed = [d for k in RESUMABLE_KEYS if k in saved for d in _differences(k, saved[k], now[k])]
        if changed:
            diffs = "; ".join(f"{k}: {_short(a)} in the checkpoint, {_short(b)} now" for k, a, b in changed)
            raise UserError(f"--resume: {ck} was trained with other values ({diffs}); an exact resume needs the "
                            f"same values (or start a new --output-dir)")
        return ck

    def _pipeline(self, pipe):
        import torch

        from relbench.models.flux import FluxArgs, load_pipeline, module_digest, resolve_model_dir

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
        from relbench.trainers._train_cache import LatentCache, TextCache
        from relbench.trainers._train_data import check_vocabulary

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
        self.model = _step_module()(transformer, self.graph_lora)
        self.ddp = self.model
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            frozen = [n for n, p in self.model.named_parameters() if not p.requires_grad]
            frozen += [n for n, _ in self.model.named_buffers()]
            DDP._set_params_and_buffers_to_ignore_for_model(self.model, frozen)
            ids = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else None
            self.ddp = DDP(self.model, device_ids=ids, broadcast_buffers=False)
        lora = [p for p in transformer.parameters() if p.requires_grad]
        groups = [("lora", lora, cfg.optim.lr_lora), ("injector", list(self.graph_lora.injector.parameters()), cfg.optim.lr_injector),
                  ("encoder", [p for p in encoder.parameters() if p.requires_grad], cfg.optim.lr_encoder)]
        o = cfg.optim
        self.opt = torch.optim.AdamW([{"params": ps, "lr": lr or o.lr, "name": n} for n, ps, lr in groups if ps],
                                     lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        ident = [self.base_ident, str(pipe.vae.dtype)]
        self.latents = LatentCache(cfg.cache.latents, self.out / "cache" / "latents", ident, pipe, cfg.resolution)
        self.texts = TextCache(cfg.cache.text, self.out / "cache" / "text", ident, pipe, cfg.max_sequence_length)
        self.clip = None
        if cfg.objective.clip is not None:
            from relbench.trainers._clip_rank import ClipRanker

            self.clip = ClipRanker(cfg.objective.clip, self.device)

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            span = max(1, self.total_steps - o.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - o.warmup_steps) / span)))
        return 1.0

    # ------------------------------------------------------------------ one step
    def batch(self, epoch: int, step_in_epoch: int, step: int, weights: dict) -> dict:
        """This process's samples of global step ``step`` with their own seeded randomness."""
        import torch

        from relbench.trainers.flow import sample_t
        from relbench.trainers._train_data import epoch_order
        from relbench.trainers.state import sample_seed

        if getattr(self, "_order_epoch", None) != epoch:
            self._order, self._order_epoch = epoch_order(len(self.examples), self.cfg.seed, epoch), epoch
        bs = self.cfg.batch_size
        first = step_in_epoch * self.global_batch + self.dist.rank * bs
        rows = []
        for j, idx in enumerate(self._order[first : first + bs]):
            ex = self.examples[idx]
            g = torch.Generator().manual_seed(sample_seed(self.cfg.seed, "sample", step, self.dist.rank * bs + j))
            t = sample_t(g, self.cfg.objective.timesteps)
            neutral = float(torch.rand((), generator=g)) < weights["neutral_prompt_prob"]
            k = int(torch.randint(len(ex.negs), (), generator=g)) if ex.negs else -1
            z0 = self.latents.get_latent(ex.image)
            eps = torch.randn(z0.shape, generator=g)
            rows.append(dict(ex=ex, t=t, prompt=ex.neutral if neutral else ex.prompt, z0=z0, eps=eps,
                             neg=ex.negs[k][1] if k >= 0 else ex.pos, neg_prompt=ex.neg_prompts[k] if k >= 0 else ex.prompt,
                             has_neg=k >= 0))
        return rows

    def inputs(self, rows: list[dict]) -> dict:
        """Batch tensors on the device: packed z0, eps, z_t, t, prompt embeddings, rotary ids."""
        import torch

        from relbench.trainers import flow

        dev, dtype = self.device, self.pipe.transformer.dtype
        z0 = flow.pack(torch.stack([r["z0"] for r in rows]).to(dev))
        eps = flow.pack(torch.stack([r["eps"] for r in rows]).to(dev))
        t = torch.tensor([r["t"] for r in rows], device=dev)
        text = [self.texts.get_text(r["prompt"]) for r in rows]
        embeds = torch.stack([e for e, _ in text]).to(dev, dtype)
        h, w = rows[0]["z0"].shape[-2:]
        return dict(z0=z0, eps=eps, t=t, z_t=flow.noisy(z0, eps, t), embeds=embeds,
                    pooled=torch.stack([p for _, p in text]).to(dev, dtype), hw=(h, w),
                    img_ids=flow.image_ids(h, w, dev, dtype),
                    txt_ids=torch.zeros(embeds.shape[1], 3, device=dev, dtype=dtype),
                    has_neg=torch.tensor([r["has_neg"] for r in rows], device=dev))

    def _autocast(self):
        import contextlib

        import torch
        from torch.nn.attention import sdpa_kernel

        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype,
                                           enabled=self.autocast_dtype is not None))
        stack.enter_context(sdpa_kernel(training_attention_backends(torch.device(self.device).type)))
        return stack

    def errors(self, x: dict, graphs: list, model=None):
        """Per-sample flow error of the batch ``x`` under ``graphs`` (one forward pass)."""
        from relbench.trainers import flow

        dtype = self.pipe.transformer.dtype
        with self._autocast():
            pred = (model or self.model)(x["z_t"].to(dtype), x["t"].to(dtype), x["embeds"], x["pooled"],
                                         x["img_ids"], x["txt_ids"], GraphBatch(graphs))
        return flow.flow_errors(pred, x["z0"], x["eps"]), pred

    def losses(self, rows: list[dict], weights: dict, probe_rank: bool):
        """Forward pass(es) for one batch: (total loss, {name: detached value})."""
        import torch

        from relbench.trainers import flow

        x = self.inputs(rows)
        B, has_neg, (h, w) = len(rows), x["has_neg"], x["hw"]
        pos, neg = [r["ex"].pos for r in rows], [r["neg"] for r in rows]
        rank_on = weights["rank_weight"] > 0
        stats = {}
        if probe_rank and not rank_on:  # rank accuracy for the log when the loss does not need g-
            with torch.no_grad():
                err_neg_probe, _ = self.errors(x, neg)
            self.model.clear()
        if rank_on:  # g+ and g- in one forward pass: one DDP forward per step
            x2 = {k: (torch.cat([v, v]) if k not in ("hw", "img_ids", "txt_ids") else v) for k, v in x.items()}
            err, pred = self.errors(x2, pos + neg, self.ddp)
        else:
            err, pred = self.errors(x, pos, self.ddp)
        l_gen = err[:B].mean()
        loss = l_gen
        stats["l_gen"] = l_gen.detach()
        if rank_on:
            l_rank, acc = flow.rank_terms(err[:B], err[B:], has_neg, self.cfg.objective.rank_margin)
            loss = loss + weights["rank_weight"] * l_rank
            stats["l_rank"], stats["rank_acc"] = l_rank.detach(), acc.detach()
        elif probe_rank:
            _, acc = flow.rank_terms(err[:B].detach(), err_neg_probe, has_neg, 0.0)
            stats["rank_acc"] = acc
        if self.clip is not None and weights["clip_weight"] > 0:
            z0_hat = flow.z0_estimate(x["z_t"], pred[:B], x["t"])
            lat = flow.denormalise_latents(flow.unpack(z0_hat, h, w), self.pipe.vae)
            with self._autocast():
                images = self.pipe.vae.decode(lat.to(self.pipe.vae.dtype)).sample
            l_clip, clip_acc = self.clip.loss(images, [r["ex"].prompt for r in rows], [r["neg_prompt"] for r in rows],
                                              self.cfg.objective.clip.margin, has_neg)
            loss = loss + weights["clip_weight"] * l_clip
            stats["l_clip"], stats["clip_acc"] = l_clip.detach(), clip_acc.detach()
        if probe_rank:
            stats["graph_sep"] = self.graph_separation(pos, neg, has_neg)
        stats["loss"] = loss.detach()
        return loss, stats

    def graph_separation(self, pos: list, neg: list, has_neg):
        """||tokens(g+) - tokens(g-)|| / ||tokens(g+)|| over the samples with a negative.

        Logged because a graph pathway can fail silently: the lab's text encoder, trained at
        the LoRA learning rate, collapsed within 10 steps to the same tokens for every graph
        (separation 2e-7, from 0.12 at init), after which no loss can tell g+ from g-."""
        import torch

        with torch.no_grad():  # one call: g+ and g- padded to the same number of triples
            both, _ = self.graph_lora.tokens(list(pos) + list(neg))
        tp, tn = both[: len(pos)], both[len(pos) :]
        keep = has_neg.to(tp.device)
        if not bool(keep.any()):
            return torch.tensor(float("nan"))
        tp, tn = tp[keep].float(), tn[keep].float()
        return (tp - tn).norm() / tp.norm().clamp(min=1e-30)

    def probe(self, draws: int = 4, neutral: bool = True) -> dict:
        """Rank accuracy on the training cases: err(g+) vs err(g-) for every example and each
        of its negatives, ``draws`` fixed (t, noise) pairs each, no gradients."""
        import torch

        from relbench.trainers.flow import sample_t
        from relbench.trainers.state import sample_seed

        rows = []
        for i, ex in enumerate(self.examples):
            for k, (_, neg) in enumerate(ex.negs):
                for d in range(draws):
                    g = torch.Generator().manual_seed(sample_seed(self.cfg.seed, "probe", i, k, d))
                    t = sample_t(g, self.cfg.objective.timesteps)
                    z0 = self.latents.get_latent(ex.image)
                    rows.append(dict(ex=ex, t=t, z0=z0, eps=torch.randn(z0.shape, generator=g), neg=neg,
                                     prompt=ex.neutral if neutral else ex.prompt, has_neg=True))
        pos_err, neg_err = [], []
        with torch.no_grad():
            for s in range(0, len(rows), self.cfg.batch_size):
                part = rows[s : s + self.cfg.batch_size]
                x = self.inputs(part)
                pos_err.append(self.errors(x, [r["ex"].pos for r in part])[0])
                neg_err.append(self.errors(x, [r["neg"] for r in part])[0])
        self.model.clear()
        ep, en = torch.cat(pos_err), torch.cat(neg_err)
        return {"rank_acc": float((ep < en).float().mean()), "margin": float((en - ep).mean()),
                "l_gen": float(ep.mean()), "n": len(rows)}

    def step(self, epoch, step_in_epoch, step, weights, probe_rank) -> dict:
        import torch

        rows = self.batch(epoch, step_in_epoch, step, weights)
        loss, stats = self.losses(rows, weights, probe_rank)
        bad = self.dist.all_sum(torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=self.device))
        if bad.item() > 0:
            self.model.clear()
            raise Diverged(", ".join(f"{k}={float(v):.4g}" for k, v in stats.items()))
        loss.backward()
        self.model.clear()
        if self.cfg.optim.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.params if p.grad is not None]))
        if not torch.isfinite(norm):
            self.opt.zero_grad(set_to_none=True)
            raise Diverged(f"gradient norm {float(norm)}")
        stats["grad_norm"] = norm.detach()
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return stats

    # ------------------------------------------------------------------ checkpoints
    def save(self, progress: dict) -> Path:
        from relbench.models.graph_lora_ckpt import save_checkpoint
        from relbench.trainers.state import swap_in, temp_dir_for, write_state

        final = self.out / LAST
        if self.dist.is_main:
            tmp = temp_dir_for(final)
            extra = {"trainer": "relbench.trainers.flux_graph_lora", "step": progress["step"], "epoch": progress["epoch"],
                     "config": self.cfg.model_dump(mode="json")}
            save_checkpoint(tmp, self.pipe.transformer, self.graph_lora, base_model=self.base_model, extra=extra,
                            base_identity=self.base_ident)
            write_state(tmp, self.opt, self.sched, progress)
            swap_in(tmp, final)
        self.dist.barrier()
        return final

    def restore(self) -> dict:
        import torch
        from safetensors.torch import load_file

        from relbench.models.graph_encoders import check_state_dict
        from relbench.models.graph_lora_ckpt import ENCODER_FILE, INJECTOR_FILE, LORA_FILE, set_lora_weights
        from relbench.models.graph_injection import lora_state_dict
        from relbench.trainers.state import read_state, restore_state

        ck = self.resume_from
        state = read_state(ck)
        enc_sd, inj_sd = load_file(str(ck / ENCODER_FILE)), load_file(str(ck / INJECTOR_FILE))
        check_state_dict(self.graph_lora.encoder, enc_sd, str(ck / ENCODER_FILE))
        check_state_dict(self.graph_lora.injector, inj_sd, str(ck / INJECTOR_FILE))
        lora_sd = {k[len("transformer."):]: v for k, v in load_file(str(ck / LORA_FILE)).items()}
        check_state_dict(lora_state_dict(self.pipe.transformer), lora_sd, str(ck / LORA_FILE))
        with torch.no_grad():
            self.graph_lora.encoder.load_state_dict(enc_sd, strict=True)
            self.graph_lora.injector.load_state_dict(inj_sd, strict=True)
            set_lora_weights(self.pipe.transformer, lora_sd)
        restore_state(ck, self.opt, self.sched, state)
        return state["progress"]

    def evaluate(self, step: int, ckpt: Path) -> dict:
        from relbench.models.flux import inference_state
        from relbench.models.graph_lora_ckpt import checkpoint_digest
        from relbench.trainers._train_eval import evaluate

        ident = {"training_ckpt": checkpoint_digest(ckpt)}
        out = self.out / EVAL_DIR / f"step-{step:07d}"
        # frozen like a loaded generator, so the images are those `relbench run --ckpt` draws
        with inference_state(self.pipe, self.graph_lora):
            return evaluate(self.cfg, out, self.pipe, self.graph_lora, ident)

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool | None = None, stop_after: int | None = None, show_progress: bool | None = None) -> dict:
        from relbench.io.locks import writer_lock

        with writer_lock(self.out, "relbench train", enabled=self.dist.is_main):
            return self._run(resume, stop_after, show_progress)

    def _run(self, resume: bool | None, stop_after: int | None, show_progress: bool | None) -> dict:
        import torch
        from tqdm import tqdm

        from relbench.trainers.state import existing_checkpoint, remove_dead_temp_dirs

        cfg, out = self.cfg, self.out
        if resume is None:
            resume = self.resume
        elif resume != self.resume:
            self.resume_from = self._check_output_dir(resume)
        progress = {"step": 0, "epoch": 0, "step_in_epoch": 0, "best": None, "evals_since_best": 0, "last_eval": None}
        if resume:
            progress = self.restore()
        if self.dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            remove_dead_temp_dirs(out, (LAST, BEST))
            _trim_log(out / LOG, progress["step"])
            (out / "train_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
        self.dist.barrier()
        self.pipe.transformer.train()
        self.graph_lora.train()
        show = (cfg.progress and sys.stderr.isatty()) if show_progress is None else show_progress
        bar = tqdm(total=self.total_steps, initial=progress["step"], desc="train", unit="step",
                   disable=not (show and self.dist.is_main), dynamic_ncols=True)
        self._say = (lambda msg: bar.write(msg, file=sys.stderr)) if show else _plain_line
        for note in self.notes:
            self.say(note)
        if progress["step"] >= self.total_steps:
            self.say(f"nothing to train: the checkpoint is at step {progress['step']} of {self.total_steps}")
        window: dict = {}
        collapse_warned: int | None = None  # the step of the one graph-collapse warning
        stopped, saved_at = None, progress["step"] if resume else None
        t_window = t_run = time.perf_counter()
        first_step = progress["step"]
        try:
            while progress["step"] < self.total_steps and stopped is None:
                epoch, sie = progress["epoch"], progress["step_in_epoch"]
                weights = cfg.weights_at(epoch)
                step = progress["step"] + 1
                log_now = step % cfg.log_every == 0 or step == self.total_steps
                t0 = time.perf_counter()
                try:
                    stats = self.step(epoch, sie, progress["step"], weights, probe_rank=log_now and cfg.log_rank_acc)
                except Diverged as exc:
                    last = existing_checkpoint(out / LAST)
                    kept = f"the last good checkpoint {last} (step {saved_at}) is untouched" if last else "no checkpoint was written"
                    raise UserError(f"step {step}: loss is not finite ({exc}); training stopped and {kept}; "
                                    f"try a lower optim.lr, mixed_precision: no, or check the data") from None
                stats["step_s"] = torch.tensor(time.perf_counter() - t0)
                for k, v in stats.items():
                    s, c = window.get(k, (0.0, 0))
                    window[k] = (s + float(v), c + 1)
                progress.update(step=step, step_in_epoch=sie + 1)
                if progress["step_in_epoch"] >= self.steps_per_epoch:
                    progress.update(epoch=epoch + 1, step_in_epoch=0)
                bar.update(1)
                if log_now:
                    rec = self._reduce_window(window, step, weights, time.perf_counter() - t_window)
                    window, t_window = {}, time.perf_counter()
                    bar.set_postfix(l_gen=f"{rec['l_gen']:.4f}", acc=rec.get("rank_acc"))
                    self._log(rec)
                    if not show:  # no bar (stderr is not a terminal, or --no-progress): one plain line
                        # the ETA is at this run's pace so far, evaluations and checkpoints included
                        eta = (self.total_steps - step) * (time.perf_counter() - t_run) / (step - first_step)
                        self.say(_log_line(rec, self.total_steps, eta))
                    if collapse_warned is None and rec.get("graph_sep") is not None \
                            and rec["graph_sep"] < GRAPH_COLLAPSED:
                        collapse_warned = step
                        self.say(collapse_warning(step, rec["graph_sep"]))
                eval_now = cfg.eval is not None and (
                    (cfg.eval.every_steps and step % cfg.eval.every_steps == 0)
                    or (step == self.total_steps and cfg.eval.at_end))
                if step % cfg.save_every == 0 or step == self.total_steps or eval_now or step == stop_after:
                    ckpt = self.save(progress)
                    saved_at = step
                    if eval_now:
                        stopped = self._eval_and_keep_best(step, ckpt, progress)
                        if stopped is None and progress["best"] is not None:
                            self.save(progress)  # progress now holds the evaluation's outcome
                if step == stop_after and stopped is None and step < self.total_steps:
                    stopped = f"stopped after step {step} (--stop-after); continue with --resume"
        finally:
            bar.close()
        return {"step": progress["step"], "total_steps": self.total_steps, "best": progress["best"],
                "last": str(out / LAST), "stopped": stopped, "log": str(out / LOG), "is_main": self.dist.is_main}

    def _reduce_window(self, window: dict, step: int, weights: dict, wall: float) -> dict:
        import torch

        keys = sorted(window)
        vals = torch.tensor([[window[k][0], window[k][1]] for k in keys], dtype=torch.float64, device=self.device)
        vals = self.dist.all_sum(vals).cpu()
        rec = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "stage": weights["stage"],
               "lr": self.sched.get_last_lr()[0], "rank_weight": weights["rank_weight"]}
        for k, (s, c) in zip(keys, vals.tolist()):
            rec[k] = s / c if c else None
        rec["steps_per_s"] = window["l_gen"][1] / wall if wall > 0 else None  # this process's steps, wall clock
        return rec

    def say(self, msg: str) -> None:
        """One line on stderr from the main process (above the progress bar when there is one)."""
        if self.dist.is_main:
            getattr(self, "_say", _plain_line)(msg)

    def _log(self, rec: dict) -> None:
        if self.dist.is_main:
            with open(self.out / LOG, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def _eval_and_keep_best(self, step: int, ckpt: Path, progress: dict) -> str | None:
        from relbench.trainers.state import copy_dir_atomic

        from relbench.trainers._train_eval import headline

        decision = None
        if self.dist.is_main:
            self.say(f"evaluating step {step} ...")
            entries = self.evaluate(step, ckpt)
            values = {k: e.get("value") for k, e in entries.items()}
            self.say(f"eval step {step}: {headline(entries, self.best_spec and self.best_spec['key'])} "
                     f"({self.out / EVAL_DIR / f'step-{step:07d}'})")
            rec = {"event": "eval", "step": step, "metrics": values}
            spec = self.best_spec
            if spec is not None:
                v = values.get(spec["key"])
                best = progress["best"]
                better = v is not None and (best is None or (v > best["value"] if spec["mode"] == "max" else v < best["value"]))
                if better:
                    progress["best"] = {"metric": spec["key"], "value": v, "step": step}
                    progress["evals_since_best"] = 0
                    copy_dir_atomic(ckpt, self.out / BEST)
                else:
                    progress["evals_since_best"] += 1
                rec["best"] = progress["best"]
                pat = self.cfg.eval.patience
                if pat is not None and progress["evals_since_best"] >= pat:
                    decision = f"early stop at step {step}: {spec['key']} did not improve in {pat} evaluations"
            progress["last_eval"] = {"step": step, "metrics": values}
            self._log(rec)
        decision, best, since = self.dist.broadcast((decision, progress["best"], progress["evals_since_best"]))
        progress["best"], progress["evals_since_best"] = best, since
        return decision


#: graph_sep below this is float rounding: the graph tokens of g+ and g- are the same (the lab's
#: collapsed encoder measured 2e-7; healthy runs 1e-2 to 1)
GRAPH_COLLAPSED = 1e-4


def collapse_warning(step: int, sep: float) -> str:
    return (f"WARNING step {step}: graph_sep {sep:.2g}: the graph tokens of g+ and g- are identical up to float "
            f"rounding, so nothing trained after the encoder can tell the graphs apart (an encoder trained at too "
            f"high a learning rate collapses this way: set optim.lr_encoder, e.g. 1e-5, or train_encoder: false)")


def _plain_line(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _log_line(rec: dict, total: int, eta_s: float | None = None) -> str:
    """A train_log.jsonl record as one terminal line, with the time left when known."""
    parts = [f"step {rec['step']}/{total}", f"epoch {rec['epoch']:.2f}", rec["stage"]]
    for k in ("loss", "l_gen", "l_rank", "rank_acc", "l_clip", "clip_acc", "graph_sep", "grad_norm", "lr"):
        if rec.get(k) is not None:
            parts.append(f"{k} {rec[k]:.4g}")
    if rec.get("steps_per_s"):
        parts.append(f"{rec['steps_per_s']:.2f} steps/s")
    if eta_s is not None:
        from relbench.engine.progress import format_duration

        parts.append(f"ETA {format_duration(eta_s)}")
    return "  ".join(parts)


def _differences(key: str, a, b) -> list[tuple]:
    """(dotted key, old, new) for each differing leaf of two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(f"{key}.{k}", a.get(k), b.get(k))]
    return [] if a == b else [(key, a, b)]


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_records(path: Path) -> tuple[list[tuple[str, dict]], int | None]:
    """The log's (line, record) pairs and the number of a torn last line that was left out.

    Only an unterminated last line may be torn (a writer killed mid-write leaves one); a bad
    line anywhere else is damage to the log, a UserError naming it.
    """
    if not path.is_file():
        return [], None
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    records, torn = [], None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        except ValueError as exc:
            if n == len(lines) and not text.endswith("\n"):
                torn = n
                continue
            why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise UserError(f"{path}:{n}: not a log record ({why}); only an unterminated last line may be torn; "
                            f"fix or delete the line, then --resume again") from None
        records.append((line, rec))
    return records, torn


def _trim_log(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (the interrupted tail is redone)
    and a torn last line."""
    if not path.is_file():
        return
    keep = [ln for ln, rec in _log_records(path)[0] if rec.get("step", 0) <= step]
    from relbench.io.atomic import write_text

    write_text(path, "".join(ln + "\n" for ln in keep))


def _seed_global_generators(seed: int) -> None:
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


def train(cfg, source: str = "train.yaml", resume: bool = False, stop_after: int | None = None, pipe=None,
          show_progress: bool | None = None) -> dict:
    """Build the trainer and run it; returns a summary dict (step, best, last, stopped). The
    output directory is locked first: a second writer is refused before the model loads."""
    from relbench.io.locks import main_process, writer_lock

    with writer_lock(cfg.output_dir, "relbench train", enabled=main_process()):
        return Trainer(cfg, pipe=pipe, source=source, resume=resume).run(stop_after=stop_after,
                                                                         show_progress=show_progress)
