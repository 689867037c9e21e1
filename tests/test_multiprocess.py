"""Two CPU processes under `accelerate launch` split the cases and match a single-process run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from conftest import ROOT, run_cli

CONFIG = """\
name: mp
suite: {{kind: shapes, triples_per_predicate: 2}}
seeds: [0, 1]
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: ignore, generator: shapes_ignore_relation}}
chunk_size: 4
output_dir: {out}
"""


def accelerate_bin():
    exe = Path(sys.executable).with_name("accelerate")
    return str(exe) if exe.exists() else shutil.which("accelerate")


def test_two_processes_match_one(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "two"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [accelerate_bin(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "relbench", "run", "--config", str(cfg)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("results:") == 1  # only rank 0 aggregates and prints
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert manifest["timings"]["images_generated"] == 144  # 36 cases x 2 images x 2 runs, shared out
    one = run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    for name in ("samples.csv", "summary.json"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
