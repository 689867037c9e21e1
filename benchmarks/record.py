"""The one writer of benchmark results: every JSON file under benchmarks/results/ says what produced it.

A figure without its commit, library versions, machine, device and date cannot be compared with a
later one, so the scripts never write JSON themselves: ``write_json`` (one file) and ``append_jsonl``
(one line per measurement) add a ``provenance`` entry and write through relbench.io.atomic, so a
killed benchmark leaves the previous file whole. It lives beside the scripts, not in the core:
only benchmarks need it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the libraries whose version moves a benchmark's figures (those not installed are recorded as None)
LIBRARIES = ("numpy", "torch", "diffusers", "transformers", "accelerate", "peft", "open_clip_torch", "safetensors")


def _commit() -> str | None:
    """HEAD, with "-dirty" where tracked files differ from it: a dirty tree's figures are not HEAD's."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _device() -> str:
    """The accelerator the benchmark ran on; read only where the script already imported torch
    (importing it here would add seconds to a benchmark that never needed it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return "cpu"


def provenance(device: str | None = None) -> dict:
    """``device`` overrides the detected one (a script that chose the CPU on a GPU machine says so)."""
    import relbench

    return {
        "commit": _commit(),
        "relbench": relbench.__version__,
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "device": device or _device(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
    }


def _record(result: dict, device: str | None) -> dict:
    if "provenance" in result:
        raise ValueError("a result may not carry its own 'provenance' key: the writer adds it")
    return {"provenance": provenance(device), **result}


def write_json(path: str | Path, result: dict, device: str | None = None, indent: int = 2) -> dict:
    """Write ``{"provenance": ..., **result}`` to ``path`` atomically; return what was written."""
    from relbench.io.atomic import write_text

    record = _record(result, device)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(record, indent=indent) + "\n")
    return record


def append_jsonl(path: str | Path, result: dict, device: str | None = None) -> dict:
    """Append one line ``{"provenance": ..., **result}``: a series of runs (a sweep) in one file."""
    from relbench.io.atomic import write_text

    record = _record(result, device)
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"  # a line torn by a killed writer of the old kind stays its own (unparsable) line
    write_text(path, old + json.dumps(record) + "\n")
    return record
