"""The lab base's configuration (BaseConfig) and its three pretraining stages (VAE, CLIP text
tower, FLUX transformer), each resumable from its own state file in the scratch directory.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from relbench.io.progress import Progress


CLIP_LEN = 16  # tokenizer_max_length of the CLIP tokenizer: every lab prompt fits


T5_LEN = 16  # max_sequence_length the lab passes to `relbench run` / `relbench train`


@dataclass(frozen=True)
class BaseConfig:
    seed: int = 0
    world: str = "lab"  # relbench.lab.world.WORLDS
    images: int = 4000
    vae_width: int = 16
    vae_blocks: int = 2  # 2: 32 px -> 16x16x4 latents (64 tokens); 1: full resolution (256 tokens)
    vae_steps: int = 300
    vae_batch: int = 16
    vae_lr: float = 2e-3
    clip_steps: int = 300  # contrastive pretraining of the CLIP text tower (0: none)
    clip_batch: int = 64
    clip_lr: float = 2e-3
    clip_object_share: float = 0.25  # share of CLIP pairs that are one object and its name
    # 2400: the loss still fell at 1200 (0.43), and the base drew both prompted objects in 0.70
    # of probe images at 1200 steps against 0.78 at 2400 (4 sampling steps; docs/lab-notebook.md round 5)
    flux_steps: int = 2400
    flux_batch: int = 32
    flux_lr: float = 1e-3
    t_shift: float = 3.0  # SD3/FLUX timestep shift of the logit-normal t (1: none)
    # the pipeline gets an exponential moving average of the transformer and T5 weights
    # (diffusers' EMAModel: the first step's weights, then decay min(ema_decay, (1 + k) / (10 + k))
    # at step k + 1; 0: the last weights), as diffusion models are usually sampled: both
    # prompted objects drawn in 0.885 of probe images against 0.854 with the last weights (4
    # heads; 6 heads: 0.924 against 0.896; 192 training triples x 2 seeds, relation prompts,
    # docs/lab-notebook.md round 8)
    ema_decay: float = 0.995
    warmup: int = 100
    relation_prompt_prob: float = 0.7
    num_layers: int = 4  # double-stream blocks; the lab injects into 2-3
    num_single_layers: int = 2
    heads: int = 6  # 4 (round 7 and before): 0.885 of probe images against 0.924 (with EMA)
    head_dim: int = 16
    text_dim: int = 64
    save_every: int = 250

    @classmethod
    def smoke(cls, seed: int = 0) -> "BaseConfig":
        """The reduced base of the test suite's smoke lab: the smoke world (a red and a blue
        square, left/right), about 100 s on 2 cores. It draws both squares (measured: in 0.88-1.0
        of test images) but does not yet read the relation from the prompt (0.5 in relation mode)."""
        return cls(seed=seed, world="smoke", images=1000, vae_steps=100, clip_steps=100, flux_steps=300, save_every=10_000,
                   heads=4, ema_decay=0.0)  # round 6's smoke base: the smoke test's figures were measured on it


def _save_state(path: Path, stage: str, step: int, modules: dict, opt, cfg: BaseConfig, extra: dict, ema=None) -> None:
    """Weights (and EMA shadows) + optimizer state as safetensors, position as JSON, written whole
    then swapped in (the trainer's own state format and atomic swap)."""
    from safetensors.torch import save_file

    from relbench.trainers.state import optimizer_to_files, swap_in, temp_dir_for

    tmp = temp_dir_for(path)
    tensors = {f"{m}.{k}": v.detach().clone().contiguous() for m, mod in modules.items() for k, v in mod.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{i}": p.detach().clone().contiguous() for i, p in enumerate(ema.shadow_params)})
        extra = {**extra, "ema_step": ema.optimization_step}
    save_file(tensors, str(tmp / "weights.safetensors"))
    opt_tensors, opt_meta = optimizer_to_files(opt)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"stage": stage, "step": step, "config": asdict(cfg),
                                                "optimizer": opt_meta, **extra}, indent=1))
    swap_in(tmp, path)


def _load_state(path: Path, modules: dict, opt, ema=None) -> dict:
    from safetensors.torch import load_file

    from relbench.trainers.state import optimizer_from_files

    w = load_file(str(path / "weights.safetensors"))
    for m, mod in modules.items():
        mod.load_state_dict({k[len(m) + 1:]: v for k, v in w.items() if k.startswith(m + ".")})
    state = json.loads((path / "state.json").read_text())
    optimizer_from_files(opt, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    if ema is not None:
        ema.load_state_dict({**ema.state_dict(), "optimization_step": state["ema_step"],
                             "shadow_params": [w[f"ema.{i}"] for i in range(len(ema.shadow_params))]})
    return state


def world_images(cfg: BaseConfig):
    """All training images as float (N, 3, 32, 32) in [-1, 1], with their triples."""
    import numpy as np
    import torch

    from relbench.lab.world import render_scene, scenes, world

    w = world(cfg.world)
    sc = scenes(cfg.images, cfg.seed, "base", w)
    arr = np.stack([render_scene(s, w) for s in sc])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return sc, x


def _gen(cfg: BaseConfig, stage: str, step: int):
    import torch

    from relbench.trainers.state import sample_seed

    return torch.Generator().manual_seed(sample_seed(cfg.seed, "lab-base", stage, step))


def _lr(cfg: BaseConfig, base: float, step: int, total: int) -> float:
    """Linear warmup, then cosine to 10%."""
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, total - cfg.warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def _step(opt, params, loss, lr: float) -> None:
    """One AdamW step at ``lr`` with the gradient norm clipped to 1 (every stage's update)."""
    import torch

    for grp in opt.param_groups:
        grp["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def train_vae(cfg, pipe, x, state_dir: Path, progress: bool, log) -> None:
    import torch

    vae = pipe.vae
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    start = 0
    ck = state_dir / "vae"
    if ck.exists():
        start = _load_state(ck, {"vae": vae}, opt)["step"]
    bar = Progress(cfg.vae_steps, "lab base: vae", "steps", enabled=progress, initial=start)
    for step in range(start, cfg.vae_steps):
        g = _gen(cfg, "vae", step)
        idx = torch.randint(0, x.shape[0], (cfg.vae_batch,), generator=g)
        batch = x[idx]
        post = vae.encode(batch).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).mean()
        loss = (rec - batch).pow(2).mean() + 1e-4 * kl
        _step(opt, vae.parameters(), loss, _lr(cfg, cfg.vae_lr, step, cfg.vae_steps))
        bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.update(1)
        if (step + 1) % 50 == 0:
            log({"stage": "vae", "step": step + 1, "loss": loss.item(), "kl": kl.item()})
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.vae_steps:
            _save_state(ck, "vae", step + 1, {"vae": vae}, opt, cfg, {})
    bar.close()
    _save_state(ck, "vae", cfg.vae_steps, {"vae": vae}, opt, cfg, {})
    vae.eval()


def train_clip(cfg, pipe, x, prompts, objects, state_dir: Path, progress: bool, log) -> None:
    """Contrastive image-text pretraining of the CLIP text tower, as CLIP-L was pretrained
    before FLUX used it. Why: FLUX reads CLIP only through its pooled vector (the eos token), and
    a CLIP trained through the flow loss alone left that vector almost the same for every prompt
    (cosine 0.99 between "red circle left of blue square" and "green triangle above yellow
    circle"), so neither the transformer's global conditioning nor the `text` graph encoder
    (which embeds object names with it) could tell prompts apart. A throwaway vision tower
    (4 px patches) is trained beside it and dropped. A share of the pairs (``clip_object_share``)
    is one object alone with its name ("a photo of a red square"), as web captions name single
    objects: in the smoke world every scene holds a red and a blue square, and scene prompts
    alone left "red square" and "blue square" at cosine 0.998.
    ``objects``: (images (N, 2, 3, H, W) of each scene's subject and object alone, their captions)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    if cfg.clip_steps <= 0:
        return
    d = cfg.text_dim
    torch.manual_seed(cfg.seed + 4)
    model = CLIPModel(CLIPConfig(
        text_config=pipe.text_encoder.config.to_dict(), projection_dim=d,
        vision_config=CLIPVisionConfig(image_size=x.shape[-1], patch_size=4, hidden_size=d, intermediate_size=2 * d,
                                       num_hidden_layers=2, num_attention_heads=4, num_channels=3).to_dict()))
    model.text_model.load_state_dict(pipe.text_encoder.state_dict())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.clip_lr, weight_decay=0.01)
    ck = state_dir / "clip"
    start = _load_state(ck, {"clip": model}, opt)["step"] if ck.exists() else 0
    tok = pipe.tokenizer
    bar = Progress(cfg.clip_steps, "lab base: clip", "steps", enabled=progress, initial=start)
    for step in range(start, cfg.clip_steps):
        g = _gen(cfg, "clip", step)
        idx = torch.randperm(x.shape[0], generator=g)[: cfg.clip_batch]
        use_rel = torch.rand(len(idx), generator=g) < cfg.relation_prompt_prob
        texts = [prompts[i][0 if r else 1] for i, r in zip(idx.tolist(), use_rel.tolist())]
        pixels = x[idx].clone()
        alone = torch.rand(len(idx), generator=g) < cfg.clip_object_share
        which = torch.randint(0, 2, (len(idx),), generator=g)
        for j in alone.nonzero().flatten().tolist():
            i, k = int(idx[j]), int(which[j])
            pixels[j], texts[j] = objects[0][i, k], objects[1][i][k]
        ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        loss = model(input_ids=ids, pixel_values=pixels, return_loss=True).loss
        _step(opt, model.parameters(), loss, _lr(cfg, cfg.clip_lr, step, cfg.clip_steps))
        bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.update(1)
        if (step + 1) % 50 == 0:
            log({"stage": "clip", "step": step + 1, "loss": loss.item()})
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.clip_steps:
            _save_state(ck, "clip", step + 1, {"clip": model}, opt, cfg, {})
    bar.close()
    if start < cfg.clip_steps:
        _save_state(ck, "clip", cfg.clip_steps, {"clip": model}, opt, cfg, {})
    pipe.text_encoder.load_state_dict(model.text_model.state_dict())
    pipe.text_encoder.eval()


def object_names(cfg: BaseConfig, scenes):
    """Each scene's subject and object drawn alone (float, as world_images) and "a photo of a <name>"."""
    import numpy as np
    import torch

    from relbench.lab.world import SIZE, place_scene, world
    from relbench.spec.prompts import with_article
    from relbench.shapes.world import render

    w = world(cfg.world)
    pairs = [(s.graph[0].subject, s.graph[0].object) for s in scenes]
    arr = []
    for s, p in zip(scenes, pairs):
        objs = {o.name: o for o in place_scene(s, w)}
        arr.append(np.stack([render([objs[n]], (SIZE, SIZE)) for n in p]))
    arr = np.stack(arr)
    x = torch.from_numpy(arr).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    return x, [tuple(f"a photo of {with_article(n)}" for n in p) for p in pairs]


def scene_prompts(scenes) -> list[tuple[str, str]]:
    """(relation prompt, neutral prompt) of each scene, as `relbench run` writes them."""
    from relbench.spec.predicates import load_vocabulary
    from relbench.spec.prompts import neutral_prompt, relation_prompt

    vocab = load_vocabulary()
    return [(relation_prompt(s.graph, vocab), neutral_prompt(s.graph, vocab)) for s in scenes]


def encode_latents(pipe, x):
    """Posterior means of every image (as the trainer caches them), and the shift/scale that
    give them zero mean and unit variance (stored in the VAE config, as FLUX's 0.1159/0.3611)."""
    import torch

    with torch.no_grad():
        z = torch.cat([pipe.vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, x.shape[0], 256)])
    shift, std = float(z.mean()), float(z.std())
    pipe.vae.register_to_config(shift_factor=round(shift, 6), scaling_factor=round(1.0 / std, 6))
    return (z - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor


def train_flux(cfg, pipe, prompts, z, state_dir: Path, progress: bool, log) -> None:
    import torch

    from relbench.trainers.flow import image_ids, noisy, pack

    # T5 learns with the transformer (it stands in for T5's own pretraining); a contrastively
    # pretrained CLIP stays frozen, as FLUX's text encoders do
    mods = {"transformer": pipe.transformer, "text_encoder_2": pipe.text_encoder_2}
    if cfg.clip_steps <= 0:
        mods["text_encoder"] = pipe.text_encoder
    else:
        pipe.text_encoder.requires_grad_(False)
    params = [p for m in mods.values() for p in m.parameters()]
    for m in mods.values():
        m.train()
    opt = torch.optim.AdamW(params, lr=cfg.flux_lr, weight_decay=0.01)
    ema = None
    if cfg.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=cfg.ema_decay, foreach=True)
    ck = state_dir / "flux"
    start = _load_state(ck, mods, opt, ema)["step"] if ck.exists() else 0
    h, w = z.shape[-2:]
    ids = image_ids(h, w, z.device, z.dtype)
    txt_ids = torch.zeros(T5_LEN, 3)
    bar = Progress(cfg.flux_steps, "lab base: transformer", "steps", enabled=progress, initial=start)
    t0, window = time.perf_counter(), []
    for step in range(start, cfg.flux_steps):
        g = _gen(cfg, "flux", step)
        idx = torch.randint(0, z.shape[0], (cfg.flux_batch,), generator=g)
        use_rel = torch.rand(cfg.flux_batch, generator=g) < cfg.relation_prompt_prob
        u = torch.sigmoid(torch.randn(cfg.flux_batch, generator=g))
        # shifted towards noise, where layout and colours are decided (first sampling steps)
        t = cfg.t_shift * u / (1 + (cfg.t_shift - 1) * u)
        eps = torch.randn(z[idx].shape, generator=g)
        z0 = z[idx]
        batch_prompts = [prompts[i][0 if r else 1] for i, r in zip(idx.tolist(), use_rel.tolist())]
        embeds, pooled, _ = pipe.encode_prompt(batch_prompts, prompt_2=None, device="cpu", max_sequence_length=T5_LEN)
        pred = pipe.transformer(hidden_states=pack(noisy(z0, eps, t)), timestep=t, guidance=None,
                                pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=txt_ids,
                                img_ids=ids, return_dict=False)[0]
        loss = (pred - pack(eps - z0)).pow(2).mean()
        _step(opt, params, loss, _lr(cfg, cfg.flux_lr, step, cfg.flux_steps))
        if ema is not None:
            ema.step(params)
        window.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.update(1)
        if (step + 1) % 50 == 0:
            log({"stage": "transformer", "step": step + 1, "loss": sum(window) / len(window),
                 "s_per_step": (time.perf_counter() - t0) / len(window)})
            t0, window = time.perf_counter(), []
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.flux_steps:
            _save_state(ck, "flux", step + 1, mods, opt, cfg, {}, ema)
    bar.close()
    if start < cfg.flux_steps:
        _save_state(ck, "flux", cfg.flux_steps, mods, opt, cfg, {}, ema)
    if ema is not None:
        ema.copy_to(params)  # the pipeline is written with the averaged weights
    for m in mods.values():
        m.eval()
