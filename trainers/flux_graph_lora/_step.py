"""The training step's job: one global step's samples, the forward passes and losses, backward
and the optimizer step, plus the no-gradient probes (rank accuracy, graph separation).

Every draw comes from a generator seeded by (seed, step, position in the global batch), so a
resumed or multi-process run draws what an uninterrupted single-process run draws.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GraphBatch:
    """Graphs passed through DDP's forward untouched (DDP recurses into lists and tuples)."""

    graphs: list


def step_module():
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



class Step:
    """The step methods of ``Trainer`` (trainer.py holds the state they read)."""

    def batch(self, epoch: int, step_in_epoch: int, step: int, weights: dict) -> dict:
        """This process's samples of global step ``step`` with their own seeded randomness."""
        import torch

        from relbench.trainers.flow import sample_t
        from relbench.trainers.flux_graph_lora._data import epoch_order
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
