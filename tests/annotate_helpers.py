"""Run directories and a live `relbench annotate` server for the annotation tests."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import ROOT, run_cli

SHAPES = """\
name: annotate-shapes
suite: {{kind: shapes, triples_per_predicate: {triples}}}
seeds: [0]
resolution: 64
metrics:
  - name: spatial
    args: {{detector: shapes, rule_set: relbench}}
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: inverse, generator: shapes_inverse}}
output_dir: {out}
"""

HOSTILE_TEXT = "<script>document.title='pwned'</script>"
HOSTILE = """\
name: annotate-hostile
suite: {{kind: jsonl, path: {suite}}}
seeds: [0]
resolution: 64
metrics: [pair_mse]
plugins: [tests.plugins.flat_colour]
runs:
  - {{name: flat, generator: flat_colour}}
output_dir: {out}
"""


def make_shapes_run(d: Path, triples: int = 1) -> Path:
    (d / "bench.yaml").write_text(SHAPES.format(out=d / "run", triples=triples))
    res = run_cli("run", "--config", str(d / "bench.yaml"), "--no-report")
    assert res.returncode == 0, res.stderr
    return d / "run"


def fresh_copy(run_dir: Path, dst: Path) -> Path:
    """A copy of a shared run directory without its answers and caches, for one test to change."""
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("human", "cache"))
    return dst


def make_hostile_run(d: Path) -> Path:
    lines = [
        {"id": "h1", "subject": HOSTILE_TEXT, "predicate": "on", "object": "table"},
        {"id": "h2", "subject": "dog", "predicate": "riding", "object": "<b id=pwned>bold</b>"},
    ]
    (d / "suite.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d / "bench.yaml").write_text(HOSTILE.format(suite=d / "suite.jsonl", out=d / "run"))
    res = run_cli("run", "--config", str(d / "bench.yaml"), "--no-report")
    assert res.returncode == 0, res.stderr
    return d / "run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`relbench annotate` in a subprocess of its own process group (killed by its id)."""

    def __init__(self, run_dirs, annotator, n, port=None):
        self.args = [*map(str, run_dirs), "--annotator", annotator, "--n", str(n)]
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "relbench", "annotate", *self.args, "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()
            try:
                urllib.request.urlopen(self.url + "/static/annotate.css", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("annotation server did not start")

    def kill(self):
        """SIGKILL: no shutdown handler runs, as when a laptop dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
