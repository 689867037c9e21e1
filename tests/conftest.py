import os
import shutil
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


#: a Chromium for the browser tests (.ci/run installs Debian's)
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def pytest_runtest_setup(item):
    """A browser test without a chromium is skipped on a developer's machine but fails under
    CI=true: there a skip would let a CI run pass that never drew a page."""
    if item.get_closest_marker("browser") and CHROMIUM is None:
        message = "no chromium on this machine (.ci/run installs Debian's chromium)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"{message}; under CI=true a browser test fails instead of skipping", pytrace=False)
        pytest.skip(message)


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


#: the smallest run: one shapes triple per predicate, one seed, the oracle, pair_mse
ONE_SEED_ORACLE = """name: small
suite: {kind: shapes, triples_per_predicate: 1}
seeds: [0]
metrics: [pair_mse]
runs:
  - {name: oracle, generator: shapes_oracle}
"""


@pytest.fixture
def small_config(tmp_path):
    def make(out="out", tpp=2, extra=""):
        return write_config(tmp_path / "bench.yaml", SMALL.format(out=tmp_path / out, tpp=tpp) + extra)
    return make
