"""The `images` generator on a folder of 10,000 exported images (CPU, no weights).

Exports a shapes benchmark of 5,000 cases (10,000 images at 64x64 with `--uses prompt,graph`),
fills the folder as an outside tool would (the shapes world drawing each line of
requests.jsonl, not timed), then times `relbench run` of the `images` generator scored by
pair_mse + spatial (shapes detector) as one process, and a rerun of the finished run.
Prints images/s loaded and scored, and the runner's split (loading vs scoring).

    python benchmarks/images_10k.py [--images 10000] [--size 64] [--json benchmarks/results/images_10k.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CONFIG = """name: images-10k
suite: {{kind: shapes, triples_per_predicate: {tpp}}}
limit: {cases}
seeds: [0]
resolution: {size}
reference_run: false
metrics: [pair_mse, {{name: spatial, args: {{detector: shapes, rule_set: relbench}}}}]
runs:
  - {{name: folder, generator: images, args: {{dir: {folder}}}}}
output_dir: {out}
"""


def relbench(*args) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "relbench", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"relbench {args[0]} failed: {res.stderr.strip()}")
    return time.perf_counter() - t0


def fill(folder: Path) -> None:
    """What an outside tool does: one PNG per line of requests.jsonl."""
    from PIL import Image

    from relbench.spec.data import graph_from_json
    from relbench.shapes.world import layout, render, scene_rng

    for raw in (folder / "requests.jsonl").read_text().splitlines()[1:]:
        r = json.loads(raw)
        graph, size = graph_from_json(r["graph"]), (r["width"], r["height"])
        objs = layout(graph, scene_rng(r["seed"], graph, "generator:random"), size, "random")
        Image.fromarray(render(objs, size)).save(folder / r["file"], compress_level=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000, help="images in the folder (two per case)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--json", metavar="FILE", help="also write the figures here (through benchmarks/record.py)")
    args = ap.parse_args()
    cases = args.images // 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, out, config = tmp / "drawn", tmp / "run", tmp / "bench.yaml"
        config.write_text(CONFIG.format(tpp=-(-cases // 9), cases=cases, size=args.size, folder=folder, out=out))
        export_s = relbench("export", "--config", str(config), "--out", str(folder), "--uses", "prompt,graph")
        t0 = time.perf_counter()
        fill(folder)
        fill_s = time.perf_counter() - t0
        n = sum(1 for p in folder.iterdir() if p.suffix == ".png")
        first = relbench("run", "--config", str(config), "--no-progress", "--no-report")
        t = json.loads((out / "manifest.json").read_text())["timings"]
        rerun = relbench("run", "--config", str(config), "--no-progress", "--no-report")
    result = {
        "images": n, "size": args.size, "cases": cases, "cpu_count": os.cpu_count(),
        "export_s": round(export_s, 2), "fill_s_outside_tool": round(fill_s, 2),
        "run_s": round(first, 2), "images_per_s": round(n / first, 1),
        "runner_wall_s": t["wall_s"], "load_s": t["generate_s"], "score_s": t["score_s"],
        "images_loaded": t.get("images_loaded"), "rerun_s": round(rerun, 2),
    }
    print(f"{n} images of {args.size}x{args.size} ({cases} cases), {os.cpu_count()} CPUs")
    print(f"export: {export_s:.2f} s (process); outside fill (not relbench): {fill_s:.2f} s")
    print(f"relbench run, images + pair_mse + spatial(shapes): {first:.2f} s (process) = {n / first:.0f} images/s "
          f"loaded and scored; inside the runner {t['wall_s']:.2f} s: loading {t['generate_s']:.2f} s "
          f"({n / max(t['generate_s'], 1e-9):.0f} images/s), scoring {t['score_s']:.2f} s")
    print(f"rerun of the finished run: {rerun:.2f} s")
    if args.json:
        from record import write_json

        write_json(args.json, result)
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
