"""CPU throughput of the flux / flux_graph_lora generators on the tiny random pipeline.

What it measures: the harness path (prompt cache, per-request seeds, pipeline call, uint8
conversion) at batch 1 vs batch 8. Tiny models say nothing about FLUX's real speed (see
gpu_flux.py for that); they show what batching buys once per-call overhead dominates.

    OMP_NUM_THREADS=1 python benchmarks/flux_cpu.py [--size 256] [--threads 1] [--images 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (multiple of 8)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=16, help="images per measurement (a multiple of 8)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="best of N (the machine may be shared)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from relbench.testing.models.flux import tiny_flux_pipeline
    from relbench.generators.flux import FluxGenerator
    from relbench.generators.flux_graph_lora import FluxGraphLoraGenerator
    from relbench.spec.data import Request, Triple

    seq = 64
    graphs = [(Triple("dog", "riding", "horse"),), (Triple("horse", "riding", "dog"),)]
    reqs = [Request(f"a photo of a dog riding a horse {i % 4}", graphs[i % 2], i, (args.size, args.size))
            for i in range(args.images)]
    gens = {
        "flux": FluxGenerator.from_pipeline(tiny_flux_pipeline(clip_max_length=seq), max_sequence_length=seq,
                                            steps=args.steps),
        "flux_graph_lora": FluxGraphLoraGenerator.from_pipeline(
            tiny_flux_pipeline(clip_max_length=seq), max_sequence_length=seq, steps=args.steps,
            encoder={"kind": "text", "embed_dim": 64, "width": 64, "layers": 5}),
    }
    print(f"tiny random FLUX (13 double + 2 single blocks, width 32), {args.size}x{args.size}, {args.steps} steps, "
          f"float32, torch threads {args.threads}, {platform.processor() or platform.machine()}")
    print(f"{'generator':<16} {'batch':>5} {'images/s':>9} {'s/image':>8}")
    for name, gen in gens.items():
        gen.generate(reqs[:2])  # warm up: prompt cache, lazy imports, allocator
        for batch in (1, 8):
            dt = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for i in range(0, len(reqs), batch):
                    gen.generate(reqs[i : i + batch])
                dt = min(dt, time.perf_counter() - t0)
            print(f"{name:<16} {batch:>5} {len(reqs) / dt:>9.2f} {dt / len(reqs):>8.3f}")


if __name__ == "__main__":
    main()
