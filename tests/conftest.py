import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run `python -m relbench ...` in a subprocess, with the repository on the path."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "relbench", *args], cwd=cwd or ROOT, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


#: `accelerate launch` through this interpreter (the console script may be absent from a venv)
ACCELERATE_LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]


@pytest.fixture
def cli():
    return run_cli


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SMALL = """\
name: small
suite: {{kind: shapes, triples_per_predicate: {tpp}}}
seeds: [0, 1]
metrics: [pair_mse]
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: inverse, generator: shapes_inverse}}
output_dir: {out}
chunk_size: 8
batch_size: 4
"""


@pytest.fixture
def small_config(tmp_path):
    def make(out="out", tpp=2, extra=""):
        return write_config(tmp_path / "bench.yaml", SMALL.format(out=tmp_path / out, tpp=tpp) + extra)
    return make
