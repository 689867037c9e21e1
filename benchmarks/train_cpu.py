"""CPU cost of `relbench train` on the tiny random FLUX: steps/s and peak memory, with the
latent/prompt caches on (memory) and off, with and without L_rel_rank.

Each variant runs in its own process (peak RSS is per process), on 8 random 64x64 photos,
batch 2 (4 steps per epoch), 6 epochs. Steady-state speed is the median step time after the
first epoch, when the memory cache is full (the seed's "about 2x faster after the first epoch");
the log's no-grad rank probe is off so step times are the training step alone.

    OMP_NUM_THREADS=1 python benchmarks/train_cpu.py [--epochs 6] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "cache memory, L_gen": {"cache": {"latents": "memory", "text": "memory"}, "rank_weight": 0.0},
    "cache off, L_gen": {"cache": {"latents": "off", "text": "off"}, "rank_weight": 0.0},
    "cache memory, L_gen + L_rel_rank": {"cache": {"latents": "memory", "text": "memory"}, "rank_weight": 1.0},
    "cache off, L_gen + L_rel_rank": {"cache": {"latents": "off", "text": "off"}, "rank_weight": 1.0},
}


def make_data(d: Path) -> None:
    import numpy as np
    from PIL import Image

    from relbench.testing.models.flux import tiny_flux_pipeline

    rng = np.random.default_rng(0)
    triples = [("dog", "riding", "horse"), ("cup", "on", "table"), ("man", "holding", "umbrella"), ("cat", "below", "chair")]
    with open(d / "train.jsonl", "w") as f:
        for i in range(8):
            s, p, o = triples[i % 4]
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"{i}.png")
            f.write(json.dumps({"id": str(i), "image": f"{i}.png", "subject": s, "predicate": p, "object": o}) + "\n")
    tiny_flux_pipeline(clip_max_length=64).save_pretrained(d / "flux-tiny")


def child(d: Path, name: str, epochs: int) -> dict:
    import torch

    from relbench.trainers.flux_graph_lora.config import TrainConfig
    from relbench.trainers.flux_graph_lora import Trainer

    torch.set_num_threads(1)
    v = VARIANTS[name]
    cfg = TrainConfig.model_validate(dict(
        model=str(d / "flux-tiny"), train_jsonl=str(d / "train.jsonl"), output_dir=str(d / f"out-{abs(hash(name))}"),
        resolution=64, epochs=epochs, batch_size=2, max_sequence_length=64, eval=None, progress=False, log_every=1, log_rank_acc=False,
        save_every=10_000, encoder={"kind": "text", "embed_dim": 16, "width": 16, "layers": 2}, cache=v["cache"],
        objective={"rank_weight": v["rank_weight"]}))
    tr = Trainer(cfg)
    tr.run()
    recs = [json.loads(x) for x in (Path(cfg.output_dir) / "train_log.jsonl").read_text().splitlines()]
    first = [r["step_s"] for r in recs if r["step"] <= tr.steps_per_epoch]
    steady = [r["step_s"] for r in recs if r["step"] > tr.steps_per_epoch]
    med = statistics.median(steady)
    return {"variant": name, "steps": len(recs), "first_epoch_s_per_step": round(statistics.mean(first), 4),
            "steady_s_per_step": round(med, 4), "steady_steps_per_s": round(1 / med, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "vae_and_text_encodes": tr.latents.misses + tr.texts.misses}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.data), args.child, args.epochs)))
        return 0
    d = Path(tempfile.mkdtemp(prefix="train_cpu_"))
    make_data(d)
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for name in VARIANTS:
        res = subprocess.run([sys.executable, __file__, "--child", name, "--data", str(d), "--epochs", str(args.epochs)],
                             capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| variant | s/step, 1st epoch | s/step after | steps/s after | peak RSS MiB | VAE+text encodes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['first_epoch_s_per_step']} | {r['steady_s_per_step']} | {r['steady_steps_per_s']} "
              f"| {r['peak_rss_mib']} | {r['vae_and_text_encodes']} |")
    if args.out:
        from record import write_json

        write_json(args.out, {"threads": 1, "rows": rows}, device="cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
