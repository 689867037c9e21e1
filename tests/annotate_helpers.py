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

    def __init__(self, run_dirs, annotator, n, port=None, host="127.0.0.1"):
        self.args = [*map(str, run_dirs), "--annotator", annotator, "--n", str(n), "--host", host]
        self.host = host
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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


def page_payload(html: Path) -> dict:
    """What an exported page carries (its JSON script element), as the annotator's browser sees it."""
    text = html.read_text()
    start = text.index('<script type="application/json" id="plan">') + len('<script type="application/json" id="plan">')
    return json.loads(text[start:text.index("</script>", start)])


def page_items(html: Path, plan) -> list:
    """The plan's items in the order the page shows them, with the caption order the page's
    annotator sees, mapped back as the study owner can (the page's ids are opaque without the
    secret in exports.json)."""
    from relbench.annotate.offline import _page_id

    payload = page_payload(html)
    secret = json.loads((plan.run_dirs[0] / "human" / "exports.json").read_text())["secret"]
    own = plan.for_annotator(payload["annotator"])  # the page's annotator's caption orders
    by_page_id = {_page_id(secret, payload["export"], it.id): it for it in own.items}
    return [by_page_id[x["id"]] for x in payload["items"]]


def submission(html: Path, choices, annotator=None) -> dict:
    """The file the page downloads after ``choices`` (one per item, in page order)."""
    p = page_payload(html)
    return {"format": "relbench-annotations/2", "plan": p["plan"], "export": p["export"], "token": p["token"],
            "annotator": annotator or p["annotator"],
            "answers": [{"item": it["id"], "choice": c, "time": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
                        for i, (it, c) in enumerate(zip(p["items"], choices))]}
