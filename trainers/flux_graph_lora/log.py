"""train_log.jsonl and the terminal lines: one JSON record per logged step or evaluation.

Public: a tool reading a training log drops a torn last line as a resume does (``log_records``),
and a terminal line reads like the trainer's (``log_line``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from relbench.errors import UserError

LOG = "train_log.jsonl"


#: graph_sep below this is float rounding: the graph tokens of g+ and g- are the same (the lab's
#: collapsed encoder measured 2e-7; healthy runs 1e-2 to 1)
GRAPH_COLLAPSED = 1e-4


def collapse_warning(step: int, sep: float) -> str:
    return (f"WARNING step {step}: graph_sep {sep:.2g}: the graph tokens of g+ and g- are identical up to float "
            f"rounding, so nothing trained after the encoder can tell the graphs apart (an encoder trained at too "
            f"high a learning rate collapses this way: set optim.lr_encoder, e.g. 1e-5, or train_encoder: false)")


def plain_line(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def log_line(rec: dict, total: int, eta_s: float | None = None) -> str:
    """A train_log.jsonl record as one terminal line, with the time left when known."""
    parts = [f"step {rec['step']}/{total}", f"epoch {rec['epoch']:.2f}", rec["stage"]]
    for k in ("loss", "l_gen", "l_rank", "rank_acc", "l_clip", "clip_acc", "graph_sep", "grad_norm", "lr"):
        if rec.get(k) is not None:
            parts.append(f"{k} {rec[k]:.4g}")
    if rec.get("steps_per_s"):
        parts.append(f"{rec['steps_per_s']:.2f} steps/s")
    if eta_s is not None:
        from relbench.io.progress import format_duration

        parts.append(f"ETA {format_duration(eta_s)}")
    return "  ".join(parts)


def log_records(path: Path) -> tuple[list[tuple[str, dict]], int | None]:
    """The log's (line, record) pairs and the number of a torn last line that was left out.

    Only an unterminated last line may be torn (a writer killed mid-write leaves one); a bad
    line anywhere else is damage to the log, a UserError naming it.
    """
    if not path.is_file():
        return [], None
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    records, torn = [], None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        except ValueError as exc:
            if n == len(lines) and not text.endswith("\n"):
                torn = n
                continue
            why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise UserError(f"{path}:{n}: not a log record ({why}); only an unterminated last line may be torn; "
                            f"fix or delete the line, then --resume again") from None
        records.append((line, rec))
    return records, torn


def trim_log(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (the interrupted tail is redone)
    and a torn last line."""
    if not path.is_file():
        return
    keep = [ln for ln, rec in log_records(path)[0] if rec.get("step", 0) <= step]
    from relbench.io.atomic import write_text

    write_text(path, "".join(ln + "\n" for ln in keep))


