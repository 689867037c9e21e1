"""Which directories `relbench run` may write into: a missing or empty one, or one a run made.

A run replaces summary.json, samples.csv, manifest.json and report.html wherever it writes,
so a folder holding anything else (the user's own files of those names, a home directory) is
refused before anything is written. A run marks its directory when it starts, so a run killed
before its manifest existed is still resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

from relbench.errors import UserError
from relbench.io.locks import LOCK_NAME

MARKER = ".relbench-run"  # written into a run directory before its first image


def _manifest_is_a_run(d: Path) -> bool:
    """Run directories made before the marker existed: their manifest.json is a run's."""
    try:
        m = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and {"config", "n_cases", "runs", "timings"} <= m.keys()


def is_run_dir(d: Path) -> bool:
    return (d / MARKER).is_file() or _manifest_is_a_run(d)


def check_output_dir(out: Path, where: str) -> None:
    """Refuse ``out`` unless a run may write there (``where``: the config's file or line)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{where}: output_dir: {out} exists and is not a directory")
    if is_run_dir(out):
        return
    here = out.resolve()
    special = {Path("/"): "the root directory", Path.home().resolve(): "the home directory",
               Path.cwd().resolve(): "the working directory"}
    if here in special:
        raise UserError(f"{where}: output_dir: {out} is {special[here]}; a run writes into a directory of its own "
                        f"(e.g. --out runs/NAME)")
    # the lock, and the marker being written by another rank of this run, are relbench's own
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith((LOCK_NAME, MARKER)))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise UserError(f"{where}: output_dir: {out} holds files no relbench run wrote ({shown}); a run writes into "
                        f"an empty or missing directory or into an earlier run's directory (choose another --out)")


def mark_run_dir(out: Path) -> None:
    if not (out / MARKER).is_file():
        from relbench.io.atomic import write_text

        write_text(out / MARKER, "written by relbench run: this directory may be rewritten by later runs\n")
