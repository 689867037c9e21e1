"""GPU cost of one training step of `relbench train` on full-size FLUX.1-schnell (random weights).

Architecture as benchmarks/gpu_flux.py (19 double + 38 single blocks, 3072 wide, FLUX's VAE),
bf16 base weights, float32 trainable parts under bf16 autocast, batch 2, 256x256, LoRA rank
16 on blocks 7-12 attention, graph tokens injected into blocks 7-12, CGIP encoder (frozen, as
the seed). It runs the trainer's own ``Trainer.step`` (forward, loss, backward, clip, AdamW)
with the latent and prompt caches filled by random tensors of the real shapes (T5 length
``--t5-len``): what a cached epoch costs, i.e. the seed's 2.55 s/step on an A6000.

Variants: L_gen alone vs L_gen + L_rel_rank (g+ and g- in one doubled forward), gradient
checkpointing off/on. Reports seconds per step (median of ``--steps`` after warm-up) and
peak allocated memory.

    python benchmarks/gpu_train.py [--steps 10] [--out benchmarks/results/gpu_train.json]
    python benchmarks/gpu_train.py --tiny    # the same code on the tiny model, on CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_data(d: Path, n: int) -> Path:
    """A JSONL split whose photos are never read (the latent cache is pre-filled)."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(d / "x.png")
    triples = [("dog", "riding", "horse"), ("cup", "on", "table"), ("man", "holding", "umbrella")]
    with open(d / "train.jsonl", "w") as f:
        for i in range(n):
            s, p, o = triples[i % 3]
            f.write(json.dumps({"id": f"b{i}", "image": "x.png", "subject": s, "predicate": p, "object": o}) + "\n")
    objs = ["__image__", "dog", "horse", "cup", "table", "man", "umbrella"]
    preds = ["__in_image__", "riding", "on", "in", "holding", "below", "above", "wearing", "eating"]
    (d / "vocab.json").write_text(json.dumps({"object_name_to_idx": {n: i for i, n in enumerate(objs)},
                                              "pred_name_to_idx": {n: i for i, n in enumerate(preds)}}))
    return d


class FilledCache:
    """Stands in for LatentCache / TextCache after the first epoch: fixed random tensors."""

    def __init__(self, latent_shape, t5_len, t5_dim, pooled_dim, dtype):
        import torch

        g = torch.Generator().manual_seed(0)
        self.z = torch.randn(latent_shape, generator=g)
        self.e = torch.randn(t5_len, t5_dim, generator=g).to(dtype)
        self.p = torch.randn(pooled_dim, generator=g).to(dtype)

    def get_latent(self, _):
        return self.z

    def get_text(self, _):
        return self.e, self.p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random FLUX on CPU (exercises the code path)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--t5-len", type=int, default=256)
    ap.add_argument("--out", help="write the results as JSON here too")
    ap.add_argument("--no-cudnn-attention", action="store_true",
                    help="leave PyTorch's cuDNN attention backend out globally (the trainer leaves it out of its own "
                         "steps on CUDA; the figures were measured with this flag, before it did)")
    args = ap.parse_args(argv)

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("gpu_train.py: no CUDA device here; this benchmark needs a GPU (or --tiny for a CPU dry run)", file=sys.stderr)
        return 2
    from benchmarks.gpu_flux import build
    from relbench.trainers.flux_graph_lora.config import TrainConfig
    from relbench.trainers.flux_graph_lora import Trainer

    device = "cpu" if args.tiny else "cuda"
    if args.no_cudnn_attention:
        torch.backends.cuda.enable_cudnn_sdp(False)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    pipe = build(args.tiny, device, dtype)
    size = 32 if args.tiny else args.size
    tmp = write_data(Path(tempfile.mkdtemp(prefix="gpu_train_")), 8)
    small = {"embed_dim": 16, "width": 16, "layers": 2} if args.tiny else {}
    cfg = TrainConfig.model_validate(dict(
        model="random", train_jsonl=str(tmp / "train.jsonl"), output_dir=str(tmp / "out"), resolution=size,
        batch_size=args.batch, epochs=100, device=device, eval=None, progress=False,
        encoder={"kind": "cgip", "vocab": str(tmp / "vocab.json"), **small},
        lora={"rank": 16, "alpha": 16, "blocks": [7, 8, 9, 10, 11, 12]}, injection={"blocks": [7, 8, 9, 10, 11, 12]},
    ))
    tr = Trainer(cfg, pipe=pipe)
    vae_scale = pipe.vae_scale_factor
    lat_ch = pipe.transformer.config.in_channels // 4
    t5_dim = pipe.transformer.config.joint_attention_dim
    cache = FilledCache((lat_ch, size // vae_scale, size // vae_scale), 48 if args.tiny else args.t5_len, t5_dim,
                        pipe.transformer.config.pooled_projection_dim, dtype)
    tr.latents = tr.texts = cache
    n_train = sum(p.numel() for g in tr.opt.param_groups for p in g["params"])
    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu (tiny model)"
    results = {"device": dev_name, "batch": args.batch, "size": size, "t5_len": cache.e.shape[0],
               "trainable_params": n_train, "torch": torch.__version__,
               "cudnn_attention": not args.no_cudnn_attention, "variants": []}
    step = 0
    for ckpt in (False, True):
        if ckpt:
            pipe.transformer.enable_gradient_checkpointing()
        else:
            pipe.transformer.disable_gradient_checkpointing()
        for rank_w in (0.0, 1.0):
            weights = {"stage": "bench", "rank_weight": rank_w, "clip_weight": 0.0, "neutral_prompt_prob": 0.5}
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for i in range(args.warmup + args.steps):
                t0 = time.perf_counter()
                tr.step(0, step % tr.steps_per_epoch, step, weights, probe_rank=False)
                if device == "cuda":
                    torch.cuda.synchronize()
                step += 1
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
            row = {"gradient_checkpointing": ckpt, "loss": "L_gen + L_rel_rank" if rank_w else "L_gen",
                   "s_per_step": round(statistics.median(times), 4),
                   "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}
            results["variants"].append(row)
            print(json.dumps(row), flush=True)
    for ckpt in (False, True):
        gen, both = (next(r["s_per_step"] for r in results["variants"]
                          if r["gradient_checkpointing"] == ckpt and r["loss"] == name) for name in ("L_gen", "L_gen + L_rel_rank"))
        results[f"rank_cost_ratio_ckpt_{'on' if ckpt else 'off'}"] = round(both / gen, 3)
    print(json.dumps({k: v for k, v in results.items() if k != "variants"}))
    if args.out:
        from record import write_json

        write_json(args.out, results, device=dev_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
