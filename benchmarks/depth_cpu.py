"""CPU throughput of the spatial metric's depth judge on tiny random DPT / Depth Anything models.

What it measures: the whole depth path of `spatial` (shapes detection, the depth model's forward
pass, bicubic resize to the image, median over each object's mask, T2I-CompBench++'s quantised
map and transposed crop) on shapes images of "in front of" / "behind" cases, at batch 1 and 8.
Tiny models say nothing about the real models' speed; they show the judge's own overhead and
what batching buys.

    OMP_NUM_THREADS=1 python benchmarks/depth_cpu.py [--size 256] [--cases 16] [--json benchmarks/results/depth_cpu.json]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--cases", type=int, default=16, help="cases per measurement (two images each)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="best of N (the machine may be shared)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from relbench.metrics.spatial import Spatial
    from relbench.plugin.context import Context
    from relbench.shapes.reference import render_reference
    from relbench.spec.data import Case, Triple
    from relbench.spec.predicates import load_vocabulary
    from relbench.testing.models.depth import save_tiny_depth_anything, save_tiny_dpt
    from relbench.testing.samples import make_sample

    ctx = Context(vocab=load_vocabulary())
    images, cases = {}, []
    for i in range(args.cases):
        pred = ("in front of", "behind")[i % 2]
        pos = (Triple("red square", pred, "blue circle"),)
        neg = (Triple("blue circle", pred, "red square"),)
        images[f"p{i}"] = render_reference(pos, i, (args.size, args.size))[0]
        images[f"n{i}"] = render_reference(neg, i, (args.size, args.size))[0]
        cases.append(Case(id=f"c{i}", item_id="t", pos=pos, neg=neg, negative_kind="swap", seed=i))
    samples = [make_sample(c, f"p{i}", f"n{i}", images.__getitem__) for i, c in enumerate(cases)]

    result = {"size": args.size, "images": 2 * args.cases, "torch_threads": args.threads,
              "machine": platform.processor() or platform.machine(), "rows": []}
    print(f"spatial depth judge, shapes detector + tiny random depth model, {args.size}x{args.size}, "
          f"{2 * args.cases} images, torch threads {args.threads}")
    print(f"{'depth':<15} {'batch':>5} {'images/s':>9} {'ms/image':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"dpt": save_tiny_dpt(Path(tmp) / "dpt"), "depth_anything": save_tiny_depth_anything(Path(tmp) / "da")}
        for name, d in dirs.items():
            for batch in (1, 8):
                dt = float("inf")
                for _ in range(args.repeats + 1):  # best of: the first pays the allocator's warm-up
                    m = Spatial(Spatial.Args(detector="shapes", depth=name, depth_model=str(d), batch_size=batch,
                                             depth_rule_set=["depth", "t2i_compbench_3d"]), ctx)
                    m.depth_model, m.detector  # noqa: B018 - loading is not timed
                    t0 = time.perf_counter()
                    m.score(samples)
                    dt = min(dt, time.perf_counter() - t0)
                    m.close()
                rate = 2 * args.cases / dt
                result["rows"].append({"depth": name, "batch": batch, "images_per_s": round(rate, 2)})
                print(f"{name:<15} {batch:>5} {rate:>9.1f} {1000 / rate:>9.2f}")
    if args.json:
        from record import write_json

        write_json(args.json, result, device="cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
