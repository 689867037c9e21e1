"""Writing a run directory: samples.csv (one row per case x run), summary.json and manifest.json.

Everything a report or a comparison needs is in these files; all are written atomically, and
samples.csv and summary.json depend only on the config and seeds (timings live in the manifest).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from relbench.io.atomic import write_text
from relbench.results.aggregate import summarise


if TYPE_CHECKING:
    from relbench.engine.execute import RunResult


BASE_COLUMNS = [
    "run", "case_id", "item_id", "seed", "noise_seed", "negative_kind", "predicate", "neg_predicate", "subject", "object",
    "graph_pos", "graph_neg", "prompt_pos", "prompt_neg", "prompt_source", "image_pos", "image_neg",
]


#: samples.csv columns an older relbench wrote under another name: readers rename them, so a run
#: directory written before the rename still loads, compares and reports
RENAMED_COLUMNS = {"triple_id": "item_id"}


def _graph_text(graph) -> str:
    return "; ".join(t.text() for t in graph)


def tested_triple(case):
    """(g+ triple, g- triple) of the relation a case tests: the triple its negative changed.

    A graph may hold several triples; a negative corrupts exactly one (relbench.spec.negatives), so
    the case's predicate, subject and object in samples.csv (and the per-predicate breakdown)
    are that triple's. A case whose graphs do not differ in one position falls back to the
    first triple.
    """
    if len(case.pos) == len(case.neg):
        changed = [i for i, (p, n) in enumerate(zip(case.pos, case.neg)) if p != n]
        if len(changed) == 1:
            return case.pos[changed[0]], case.neg[changed[0]]
    return case.pos[0], case.neg[0]


def _prompt_source(plan, run, case) -> str:
    """samples.csv's prompt_source: "peer" where the generator was given the peer's own prompts,
    "relbench" where relbench wrote them (and for the references, which no prompt drew)."""
    from relbench.engine.plan import REFERENCE, RELBENCH, prompt_source

    return RELBENCH if run.name == REFERENCE else prompt_source(plan, case, run.info.get("prompt_mode", "relation"))


def sample_rows(plan, collected: RunResult) -> tuple[list[str], list[dict]]:
    metric_cols = [c for info in collected.metrics.values() for c in info.columns]
    rows = []
    for run in collected.runs:
        for case in plan.cases:
            t, t_neg = tested_triple(case)
            row = {
                "run": run.name, "case_id": case.id, "item_id": case.item_id, "seed": case.seed,
                "noise_seed": case.noise_seed,
                "negative_kind": case.negative_kind, "predicate": t.predicate, "neg_predicate": t_neg.predicate,
                "subject": t.subject, "object": t.object,
                "graph_pos": _graph_text(case.pos), "graph_neg": _graph_text(case.neg),
                "prompt_pos": run.prompts[case.id][0], "prompt_neg": run.prompts[case.id][1],
                "prompt_source": _prompt_source(plan, run, case),
                "image_pos": run.keys[case.id][0] or "", "image_neg": run.keys[case.id][1] or "",
            }
            scores = collected.scores[run.name].get(case.id, {})
            for col in metric_cols:
                row[col] = scores.get(col)
            rows.append(row)
    return BASE_COLUMNS + metric_cols, rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def csv_line(values: list[str]) -> str:
    """One CSV record ending in "\n" whose fields read back exactly as given.

    The csv module quotes a field only for the characters of its own line terminator, so with
    "\n" a bare "\r" (which every reader takes for a line break) would go out unquoted and
    split the row. Written with "\r\n", every field holding either character is quoted; the
    terminator is then swapped for "\n", which keeps the bytes of ordinary rows unchanged.
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()[:-2] + "\n"


def write_samples_csv(path: Path, columns: list[str], rows: list[dict]) -> bool:
    """Write samples.csv; False when it held these rows already."""
    lines = [csv_line(columns)] + [csv_line([_fmt(r.get(c)) for c in columns]) for r in rows]
    return _write_if_changed(path, "".join(lines))


def _write_if_changed(path: Path, text: str) -> bool:
    """Write unless the file holds these bytes already: a finished run rerun writes nothing, so
    it also succeeds in a directory it may only read."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return False
    except OSError:
        pass
    write_text(path, text)
    return True


#: manifest keys (and keys of each run's entry) that describe the process, not the results: a
#: rerun that changed no result keeps the manifest of the run that made them
_PROCESS_KEYS = ("created", "argv", "command", "timings")


_RUN_PROCESS_KEYS = ("images_generated", "images_loaded", "generate_s")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("relbench", "numpy", "scipy", "pillow", "pydantic", "torch", "diffusers", "peft", "transformers",
                "open_clip_torch", "lpips", "accelerate"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _suite_rejected(plan) -> dict:
    rejected = getattr(plan, "suite_rejected", None)
    if not rejected:
        return {}
    from relbench.suites.peers import rejected_summary

    return {"suite_lines_rejected": rejected_summary(rejected)}


#: the manifest's account of how a peer suite's prompts were given (relbench.spec.prompts.peer_prompt)
PEER_PROMPTS_HOW = (
    "relation-mode generators get the peer's prompt of g+ verbatim; g- is that prompt with the changed "
    "triple's relation phrase replaced by the new predicate's in the peer's spelling (replace), with the two "
    "object phrases exchanged (swap of a triple whose objects are in no other triple), or with the relation "
    "phrase replaced by the inverse predicate's (swap inside a chain); where none applies (a swap of a "
    "predicate without an inverse inside a chain) both prompts are relbench's. Judges judge relation texts "
    "built from the graphs either way.")


def _suite_prompts(plan) -> dict:
    """{"suite_prompts": {...}} where the suite has prompts of its own: how generators got them
    and how many cases fell back to relbench's prompts (samples.csv's prompt_source says which)."""
    with_prompt = [c for c in plan.cases if c.prompt is not None]
    if not with_prompt:
        return {}
    from relbench.engine.plan import PEER, prompt_source

    peer = {c.id for c in with_prompt if prompt_source(plan, c, "relation") == PEER}
    return {"suite_prompts": {"how": PEER_PROMPTS_HOW, "cases": len(plan.cases), "peer": len(peer),
                              "relbench": len(plan.cases) - len(peer),
                              "relbench_cases": [c.id for c in plan.cases if c.id not in peer]}}


def manifest(plan, collected, argv: list[str] | None) -> dict:
    t = collected.timings
    topo = collected.topology
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": argv,
        "config": plan.bench.model_dump(mode="json"),
        "seeds": list(plan.bench.seeds),
        "n_cases": len(plan.cases),
        "items_without_negative": plan.skipped_items,
        **_suite_rejected(plan),
        **_suite_prompts(plan),
        **({"cases_left_out": plan.left_out} if getattr(plan, "left_out", None) else {}),
        # which run's files the hard and adversarial negatives were read from, and their identity
        **({"negative_source": plan.negative_source.identity} if getattr(plan, "negative_source", None) else {}),
        "runs": {r.name: r.info for r in collected.runs},
        "metrics": {k: {"fingerprint": v.fingerprint, "fingerprint_parts": v.fingerprint_parts, "args": v.args,
                        "consumes": v.consumes, "provenance": v.provenance}
                    for k, v in collected.metrics.items()},
        "versions": _versions(),
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "command": sys.argv,
        "world_size": topo.world_size,
        "timings": {
            "wall_s": round(collected.wall_s, 3),
            "generate_s": round(t.generate_s, 3),
            "score_s": round(t.score_s, 3),
            "images_generated": t.images_generated,
            **({"images_loaded": t.images_loaded} if t.images_loaded else {}),
            "images_reused": t.images_reused,
            "per_run": t.per_run,
            # what each metric computed in this process (0 where its scores came from the cache)
            "metric_work": {k: v.counts for k, v in collected.metrics.items() if v.counts},
            # the inputs each metric read in this process, within its declared (enforced) consumes
            "metric_inputs_read": {k: sorted(v) for k, v in sorted(t.inputs_read.items())},
        },
    }


def write_results(plan, collected, argv=None) -> dict:
    columns, rows = sample_rows(plan, collected)
    summary = summarise(plan, collected, (columns, rows))
    changed = write_samples_csv(plan.out / "samples.csv", columns, rows)
    changed |= _write_if_changed(plan.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    new = manifest(plan, collected, argv)
    if changed or _results_part(_read_json(plan.out / "manifest.json")) != _results_part(new):
        write_text(plan.out / "manifest.json", json.dumps(new, indent=2) + "\n")
    return summary


def _results_part(m: dict | None) -> dict | None:
    if m is None:
        return None
    out = {k: v for k, v in m.items() if k not in _PROCESS_KEYS}
    out["runs"] = {name: {k: v for k, v in info.items() if k not in _RUN_PROCESS_KEYS}
                   for name, info in (m.get("runs") or {}).items()}
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
