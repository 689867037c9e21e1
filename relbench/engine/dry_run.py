"""`relbench run --dry-run`: what a run would make and reuse, and why, without writing a file.

Per run: images to draw and images in the store, score chunks to compute and chunks cached.
For each plugin whose fingerprint differs from the one manifest.json recorded, which of its
parts changed (a module of its code, an argument, its weights, a library version), so a
redraw of every cached image is explained before it costs GPU hours.
"""

from __future__ import annotations

import json

from relbench.plugin.context import Context
from relbench.plugin.registry import GENERATORS, needs_packages
from relbench.engine.plan import Plan, _prepares, wanted
from relbench.engine.execute import RunImages, _build_metrics, _chunks, _close_all, reference_run, request_keys, score_file
from relbench.engine.distributed import Topology
from relbench.engine.store import ImageStore


def dry_run(plan: Plan) -> list[str]:
    """The report's lines: one per run, then one per changed fingerprint."""
    store, cache_dir = ImageStore(plan.out / "images"), plan.out / "cache" / "scores"
    old = _recorded(plan)
    ctx = Context(vocab=plan.vocab)
    runs, images, changed = [], {}, []
    for r in plan.runs:
        with needs_packages(GENERATORS, r.cls.name):
            gen = r.cls(r.args, ctx)
            try:
                if _prepares(r.cls):
                    gen.prepare(wanted(plan, r.spec))  # a fingerprint of files made elsewhere hashes them
                fp, parts = gen.fingerprint(), gen.fingerprint_parts()
                prompts, keys, _ = request_keys(plan, r.spec, gen, fp)
            finally:
                gen.close()
        runs.append(RunImages(r.spec.name, prompts, keys, {}))
        images[r.spec.name] = {k for pair in keys.values() for k in pair}
        changed += _changes(f"{r.spec.name} ({r.spec.generator})", (old.get("runs") or {}).get(r.spec.name), fp, parts)
    ref = reference_run(plan, store, Topology(), draw=False)
    if ref is not None:
        runs.append(ref)
        images[ref.name] = {k for pair in ref.keys.values() for k in pair if k and not k.startswith("file:")}
    chunks = _chunks(plan.cases, plan.bench.chunk_size)
    metrics = _build_metrics(plan, ctx)
    try:
        fps = [m.fingerprint() for m in metrics]
        for m, fp in zip(metrics, fps):
            changed += _changes(f"metric {m.name}", (old.get("metrics") or {}).get(m.name), fp, m.fingerprint_parts())
        lines = []
        for run in runs:
            have = sum(store.has(k) for k in images[run.name])
            text = f"{run.name}: images {len(images[run.name]) - have} to draw, {have} reused"
            for m, fp in zip(metrics, fps):
                cached = sum(score_file(cache_dir, m.name, fp, run, c).is_file() for c in chunks)
                text += f"; {m.name} score chunks {len(chunks) - cached} to compute, {cached} reused"
            lines.append(text)
    finally:
        _close_all(metrics)
    return lines + changed


def _recorded(plan: Plan) -> dict:
    try:
        return json.loads((plan.out / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _changes(what: str, recorded: dict | None, fp: str, parts: dict) -> list[str]:
    """One line per changed part of a fingerprint (none when it is the one recorded)."""
    if not recorded or recorded.get("fingerprint") == fp:
        return []
    before = recorded.get("fingerprint_parts")
    if not before:
        return [f"{what}: fingerprint changed (manifest.json records no parts to compare)"]
    out = []
    code_a, code_b = before.get("code") or {}, parts.get("code") or {}
    for kind, key in (("module", "modules"), ("library", "libraries")):
        a, b = code_a.get(key) or {}, code_b.get(key) or {}
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                change = "added" if name not in a else "removed" if name not in b else (
                    "changed" if kind == "module" else f"{a[name]} -> {b[name]}")
                out.append(f"{kind} {name} {change}")
    args_a, args_b = before.get("args") or {}, parts.get("args") or {}
    for name in sorted(set(args_a) | set(args_b)):
        if args_a.get(name) != args_b.get(name):
            out.append(f"argument {name}: {json.dumps(args_a.get(name))} -> {json.dumps(args_b.get(name))}")
    if before.get("weights") != parts.get("weights"):  # for images made elsewhere, the files' content
        files = isinstance(parts.get("weights"), dict) and "files" in parts["weights"]
        out.append("image files changed" if files else "weights changed")
    if before.get("version") != parts.get("version"):
        out.append(f"version {before.get('version')} -> {parts.get('version')}")
    return [f"{what}: fingerprint changed: " + ("; ".join(out) or "its code identity is computed differently")]
