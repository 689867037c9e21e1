"""CPU judge throughput of the spatial metric's detectors on tiny random models.

What it measures: the detector path the spatial metric runs (image conversion, processor,
forward pass, box post-processing) for GroundingDINO, OWL-ViT, OWLv2 and Mask2Former, two
object names per image. Tiny models say nothing about the real models' speed; they show what
each detector's own post-processing and per-call overhead cost.

    OMP_NUM_THREADS=1 python benchmarks/detectors_cpu.py [--images 32] [--size 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="best of N (the machine may be shared)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from benchmarks.record import write_json
    from relbench.models.detectors import build_detector
    from relbench.metrics.spatial import Spatial
    from relbench.testing.models.grounding_dino import save_tiny_grounding_dino
    from relbench.testing.models.mask2former import save_tiny_mask2former
    from relbench.testing.models.owlvit import save_tiny_owl

    torch.set_num_threads(args.threads)
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 255, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    items = [(im, ["dog", "cat"]) for im in images]
    out = {"images": args.images, "size": args.size, "threads": args.threads, "names_per_image": 2, "detectors": {}}
    with tempfile.TemporaryDirectory() as d:
        models = {"grounding_dino": save_tiny_grounding_dino(Path(d) / "gd"),
                  "owlvit": save_tiny_owl(Path(d) / "owlvit", 1), "owlv2": save_tiny_owl(Path(d) / "owlv2", 2),
                  "mask2former": save_tiny_mask2former(Path(d) / "m2f")}
        for name, path in models.items():
            det = build_detector(name, Spatial.Args(detector=name, model=str(path), batch_size=8), "cpu")
            det.detect_many(items[:8])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                det.detect_many(items)
                best = min(best, time.perf_counter() - t0)
            out["detectors"][name] = {"images_per_s": round(args.images / best, 1), "seconds": round(best, 3)}
            print(f"{name:>15}: {args.images / best:7.1f} images/s ({best:.2f} s for {args.images})")
    write_json(Path(__file__).parent / "results" / "detectors_cpu.json", out, device="cpu")


if __name__ == "__main__":
    main()
