"""`relbench export`: the images a benchmark would ask for, for a generator relbench cannot run.

DIR/requests.jsonl holds a header line (how to fill the folder) and then one line per image to
draw, named as the `images` generator (layout: export) will look for it; DIR/prompts.txt holds
each distinct prompt once, for tools that read a prompt list (GenEval's and T2I-CompBench's
generation scripts). Requests are the runner's own (``relbench.engine.plan.wanted``), so prompts and
noise seeds are exactly those a run asks a generator for, and they are deduplicated by the
fields the external generator reads, as the image store dedups a generator by its ``uses``.
"""

from __future__ import annotations

import json
from pathlib import Path

from relbench.errors import UserError

REQUESTS = "requests.jsonl"
PROMPTS = "prompts.txt"
MARKER = ".relbench-export"  # written with the files: this directory may be exported into again
FORMAT = 1
USES = ("prompt", "graph")


def parse_uses(text: str) -> frozenset[str]:
    """'prompt' or 'prompt,graph' (any of the request fields an external generator reads)."""
    names = [u.strip() for u in text.split(",") if u.strip()]
    bad = [u for u in names if u not in USES]
    if bad or not names:
        raise UserError(f"--uses {text!r}: {'unknown field ' + bad[0] if bad else 'no field named'} "
                        f"(allowed: prompt, or prompt,graph for a graph-conditioned generator)")
    return frozenset(names)


def identity(prompt: str, graph: list, seed: int, width: int, height: int, uses) -> str:
    """What makes two requests the same image for a generator reading ``uses``: the export's
    dedup key, and the `images` generator's way back from a request to its file."""
    fields = {"seed": seed, "size": [width, height]}
    if "prompt" in uses:
        fields["prompt"] = prompt
    if "graph" in uses:
        fields["graph"] = [list(t) for t in graph]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _check_out(out: Path) -> None:
    """A missing or empty directory, or one relbench export wrote: never a folder of the user's."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    if (out / MARKER).is_file():
        return
    from relbench.io.locks import LOCK_NAME

    others = sorted(p.name for p in out.iterdir() if not p.name.startswith(LOCK_NAME))  # another export's lock
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise UserError(f"--out: {out} holds files relbench export did not write ({shown}); export into an empty "
                        f"or missing directory, or one an earlier export made")


def build_lines(plan, uses: frozenset[str]) -> list[dict]:
    """One line per distinct image of every prompt mode the config's runs use, in case order."""
    from relbench.spec.data import graph_to_json
    from relbench.engine.plan import wanted

    index = {c.id: (i, c.seed) for i, c in enumerate(plan.cases)}
    modes = list(dict.fromkeys(r.spec.prompt_mode for r in plan.runs))
    lines: dict[str, dict] = {}
    for mode in modes:  # runs of one prompt mode ask for the same images
        spec = next(r.spec for r in plan.runs if r.spec.prompt_mode == mode)
        tail = f"-{mode}" if len(modes) > 1 else ""
        for w in wanted(plan, spec):
            r, graph = w.request, graph_to_json(w.request.graph)
            key = identity(r.prompt, graph, r.seed, *r.size, uses)
            if key not in lines:
                i, seed = index[w.case_id]
                lines[key] = {"file": f"{i:05d}-{w.side}-s{seed}{tail}.png", "prompt": r.prompt, "graph": graph,
                              "seed": r.seed, "width": r.size[0], "height": r.size[1], "run": spec.name,
                              "prompt_mode": mode, "cases": []}
            lines[key]["cases"].append([w.case_id, w.side])
    return list(lines.values())


def header(plan, uses: frozenset[str], n: int) -> dict:
    return {
        "relbench_export": FORMAT, "benchmark": plan.bench.name, "uses": sorted(uses), "images": n,
        "readme": "each following line is one image to draw: draw `prompt` (and `graph`, triples [subject, "
                  "predicate, object], if your generator reads it) at width x height, ideally from noise seed "
                  "`seed`, and save it as a PNG named `file` in this folder; then score the folder with a run "
                  "{name: my-model, generator: images, args: {dir: THIS_FOLDER}} (docs/generators.md)",
    }


def export(plan, out: Path, uses: frozenset[str]) -> dict:
    """Write DIR/requests.jsonl and DIR/prompts.txt (and the marker) as one change, holding the
    directory's writer lock."""
    from relbench.io.locks import writer_lock

    _check_out(out)
    lines = build_lines(plan, uses)
    prompts = list(dict.fromkeys(line["prompt"] for line in lines))
    if any("\n" in p or "\r" in p for p in prompts):
        raise UserError("suite: a prompt spans several lines, which prompts.txt (one prompt per line) cannot hold")
    body = [json.dumps(header(plan, uses, len(lines)))] + [json.dumps(line) for line in lines]
    with writer_lock(out, "relbench export"):
        _write(out, body, prompts)
    return {"images": len(lines), "prompts": len(prompts), "cases": len(plan.cases)}


def _write(out: Path, body: list[str], prompts: list[str]) -> None:
    from relbench.io.atomic import write_all

    write_all([(out / MARKER, b"written by relbench export: this directory may be exported into again\n"),
               (out / REQUESTS, ("\n".join(body) + "\n").encode()),
               (out / PROMPTS, ("\n".join(prompts) + "\n").encode())])


def read_requests(folder: Path) -> tuple[dict, list[dict]]:
    """(header, lines) of an export's requests.jsonl; one clear line when it is not one."""
    path = folder / REQUESTS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"dir: {path} is missing; layout export reads the file names `relbench export --config "
                        f"FILE --out {folder}` writes (or set layout: geneval or t2i_compbench)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"dir: cannot read {path}: {exc}") from None
    rows = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            raise UserError(f"dir: {path}:{n}: not JSON") from None
        rows.append((n, row))
    if not rows or not isinstance(rows[0][1], dict) or rows[0][1].get("relbench_export") != FORMAT:
        raise UserError(f"dir: {path}:1: not a relbench export header (export the folder again with relbench export)")
    lines = []
    for n, row in rows[1:]:
        need = ("file", "prompt", "graph", "seed", "width", "height")
        if not isinstance(row, dict) or any(k not in row for k in need):
            raise UserError(f"dir: {path}:{n}: a request line needs {', '.join(need)}")
        lines.append(row)
    return rows[0][1], lines
