"""Two CPU processes under `accelerate launch` split the cases and match a single-process run."""

import json
import os
import subprocess

import pytest

from conftest import ACCELERATE_LAUNCH, ROOT, run_cli

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


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_match_one(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "two"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
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


def test_run_and_train_share_one_topology(monkeypatch):
    """relbench.engine.distributed is the one home of the process topology; training resolves its
    device there too (no copy in the trainer)."""
    import relbench.trainers.flux_graph_lora as trainer
    from relbench.engine.distributed import Topology, topology
    from relbench.errors import UserError

    assert not hasattr(trainer, "Dist")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert topology() == Topology()  # runs: the generators choose the device
    alone = topology("cpu")
    assert (alone.rank, alone.world_size, alone.device, alone.is_main) == (0, 1, "cpu", True)
    assert alone.broadcast({"x": 1}) == {"x": 1} and alone.all_sum(3) == 3
    import torch

    if not torch.cuda.is_available():
        assert topology("auto").device == "cpu"
        try:
            topology("cuda:1")
        except UserError as exc:
            assert "cuda:1 requested but CUDA is not available" in str(exc)
        else:
            raise AssertionError("cuda without CUDA must be refused")
