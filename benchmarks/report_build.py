"""How long a report takes to build, and how big it is, for 480 cases x 4 runs.

The run directory is a real shapes-suite run sized like the seed's evaluation: 8 predicates x
20 triples x 3 seeds = 480 cases, runs oracle / ignore_relation / inverse / ignore_relation with
neutral prompts (so the relation-vs-neutral comparison is built too), plus the reference run;
metrics pair_mse, spatial and (when open_clip is installed) clip_alignment with a tiny random
CLIP, so every section of the report has content. The run is made once and reused.

    python benchmarks/report_build.py [--workdir DIR] [--repeat N]

Prints the cold build time (a fresh `relbench report` process, imports included), the warm
in-process build time, and the file size. Target: under 5 s on a 2-core machine.
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
sys.path.insert(0, str(ROOT))

CONFIG = """\
name: report-benchmark
suite: {{kind: shapes, triples_per_predicate: 20, predicates: [above, below, left of, right of, near, in, "on", behind]}}
seeds: [0, 1, 2]
metrics:
  - pair_mse
  - {{name: spatial, args: {{detector: shapes, rule_set: relbench}}}}
{clip}runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: ignore_relation, generator: shapes_ignore_relation}}
  - {{name: inverse, generator: shapes_inverse}}
  - {{name: ignore_relation-neutral, generator: shapes_ignore_relation, prompt_mode: neutral}}
output_dir: {out}
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def make_run(work: Path) -> Path:
    out = work / "run"
    if (out / "summary.json").is_file():
        return out
    clip = ""
    try:
        from relbench.testing.models.clip import make_tiny_checkpoint

        d = work / "clip"
        model, ckpt = make_tiny_checkpoint(d)
        cfg = json.loads((d / "relbench-tiny-clip.json").read_text())
        (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
        os.replace(ckpt, d / "open_clip_pytorch_model.bin")
        clip = f"  - {{name: clip_alignment, args: {{checkpoint: {d}}}}}\n"
    except ImportError:
        print("open_clip not installed: the run has no CLIP columns", file=sys.stderr)
    cfg = work / "bench.yaml"
    cfg.write_text(CONFIG.format(out=out, clip=clip))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "relbench", "run", "--config", str(cfg), "--no-report", "--no-progress"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(res.stderr)
    print(f"made the run directory in {time.perf_counter() - t0:.1f}s: {out}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "relbench-report-benchmark"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    run = make_run(work)
    summary = json.loads((run / "summary.json").read_text())
    runs = [n for n, r in summary["runs"].items() if not r["is_reference"]]
    print(f"{summary['n_cases']} cases x {len(runs)} runs (+ reference), "
          f"{len(next(iter(summary['runs'].values()))['metrics'])} aggregates per run")

    out = work / "report.html"
    cold = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "relbench", "report", str(run), "-o", str(out)],
                             cwd=ROOT, env=_env(), capture_output=True, text=True)
        cold.append(time.perf_counter() - t0)
        if res.returncode != 0:
            sys.exit(res.stderr)
    from relbench.reports import build_report

    build_report([run], out)  # imports
    warm = []
    for _ in range(args.repeat):
        warm.append(build_report([run], out)["seconds"])
    size = out.stat().st_size
    print(f"cold build (fresh `relbench report` process): best {min(cold):.2f}s, median {sorted(cold)[len(cold) // 2]:.2f}s")
    print(f"warm build (in process, imports done):        best {min(warm):.2f}s")
    print(f"report size: {size / 1e6:.2f} MB ({size} bytes): {out}")
    print("target: < 5 s: " + ("met" if min(cold) < 5 else "NOT met"))


if __name__ == "__main__":
    main()
