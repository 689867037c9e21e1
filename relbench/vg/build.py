"""Turn Visual Genome into balanced, image-disjoint JSONL splits plus a counts summary.

One streaming pass over relationships.json filters relationships (relbench/vg/read.py), keeps a
seeded pool per predicate (relbench/vg/sample.py), then fills the quotas, optionally exports
square reference images, and writes ``<prefix>_train.jsonl``, ``<prefix>_val.jsonl`` and
``<prefix>_counts.json`` (each via a temporary file and os.replace, so a failed run never
leaves a half-written split).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from relbench.errors import UserError
from relbench.io.jsonstream import iter_json_array
from relbench.io.locks import writer_lock
from relbench.spec.predicates import ORIGIN_PREDICATES, Vocabulary, load_vocabulary
from relbench.suites.jsonl import SuiteRecord
from relbench.vg.boxes import FITS, fit_square, transform_box
from relbench.vg.export import export_square
from relbench.io.atomic import write_text
from relbench.vg.read import DROP_REASONS, Candidate, CandidateFilter, read_image_data
from relbench.vg.sample import Pool, assign, priority, quotas

DEFAULT_POOL_FACTOR = 20  # pool per predicate = max(1000, factor x its train+val quota)


@dataclass
class VGOptions:
    relationships: str
    image_data: str
    images: str
    out: str = "data/splits"
    train: int = 800
    val: int = 160
    seed: int = 0
    predicates: list[str] = field(default_factory=lambda: list(ORIGIN_PREDICATES))
    min_box: float = 0.0
    export_size: int | None = None  # e.g. 256: write size x size reference images
    fit: str = "crop"
    prefix: str = "vg"
    pool: int | None = None  # candidates kept per predicate; None: automatic


def _check_options(o: VGOptions, vocab: Vocabulary) -> list[str]:
    if o.train < 0 or o.val < 0 or o.train + o.val == 0:
        raise UserError(f"--train {o.train} / --val {o.val}: must be >= 0 and not both 0")
    if o.min_box < 0:
        raise UserError(f"--min-box {o.min_box}: must be >= 0 (pixels)")
    if o.export_size is not None and o.export_size < 8:
        raise UserError(f"--export-images {o.export_size}: must be at least 8 (pixels per side)")
    if o.fit not in FITS:
        raise UserError(f"--fit {o.fit!r}: unknown (allowed: {', '.join(FITS)})")
    if not o.prefix or any(c in o.prefix for c in "/\\") or o.prefix.startswith("."):
        raise UserError(f"--prefix {o.prefix!r}: must be a plain file-name prefix (allowed: e.g. 'vg')")
    if o.pool is not None and o.pool < 1:
        raise UserError(f"--pool {o.pool}: must be >= 1")
    if not o.predicates:
        raise UserError("--predicates: at least one predicate is needed")
    preds: list[str] = []
    for text in o.predicates:
        name = vocab.get(text, where="--predicates").name
        if name in preds:
            raise UserError(f"--predicates: {text!r} repeats {name!r} (allowed: each predicate once)")
        preds.append(name)
    if not os.path.isdir(o.images):
        raise UserError(f"--images {o.images}: not a directory (allowed: the folder holding VG_100K/, VG_100K_2/ or the .jpg files)")
    return preds


def build_vg_splits(o: VGOptions, vocab: Vocabulary | None = None) -> dict:
    """Build the splits described by ``o``; returns the counts summary that was written."""
    vocab = vocab or load_vocabulary()
    preds = _check_options(o, vocab)
    with writer_lock(o.out, "relbench data vg"):
        return _build(o, vocab, preds)


def _build(o: VGOptions, vocab: Vocabulary, preds: list[str]) -> dict:
    train_q, val_q = quotas(o.train, preds), quotas(o.val, preds)
    images, image_data_repeats = read_image_data(o.image_data)
    export = (o.export_size, o.fit) if o.export_size else None
    filt = CandidateFilter(images, o.images, vocab, preds, o.min_box, export)
    pools = {
        p: Pool(o.pool or max(1000, DEFAULT_POOL_FACTOR * (train_q[p] + val_q[p]))) for p in preds
    }
    for entry in iter_json_array(o.relationships, progress="relationships"):
        for cand in filt.image_candidates(entry):
            pools[cand.predicate].add(priority(o.seed, cand), cand)

    train, val, short = assign(pools, train_q, val_q)
    if short:
        reasons = "; ".join(s.describe() for s in short)
        top = ", ".join(f"{k} {v}" for k, v in filt.drops.most_common(3) if v)
        raise UserError(
            f"too few examples for {len(short)} predicate(s): {reasons} "
            f"(lower --train/--val, leave them out with --predicates, or lower --min-box; "
            f"{filt.read} relationships read, most dropped: {top or 'none'})"
        )

    out = os.path.abspath(o.out)
    os.makedirs(out, exist_ok=True)
    order = {p: i for i, p in enumerate(preds)}
    split_items = {
        name: sorted((c for p in preds for c in split[p]), key=lambda c: (order[c.predicate], c.image_id, c.rel_key))
        for name, split in (("train", train), ("val", val))
    }

    resized = 0
    image_dir = None
    if o.export_size:
        image_dir = os.path.join(out, f"{o.prefix}_images{o.export_size}")
        os.makedirs(image_dir, exist_ok=True)
        ids = sorted({c.image_id for items in split_items.values() for c in items})
        from tqdm import tqdm

        for image_id in tqdm(ids, desc="reference images", disable=None):
            info = images[image_id]
            dst = os.path.join(image_dir, f"{image_id}.jpg")
            resized += export_square(filt.paths[image_id], dst, (info.width, info.height), o.export_size, o.fit)

    for name, items in split_items.items():
        lines = [_record(c, images[c.image_id], filt.paths[c.image_id], out, image_dir, o).to_json() for c in items]
        write_text(os.path.join(out, f"{o.prefix}_{name}.jsonl"), "".join(line + "\n" for line in lines))

    summary = {
        "sources": {"relationships": o.relationships, "image_data": o.image_data, "images": o.images},
        "seed": o.seed,
        "predicates": preds,
        "min_box": o.min_box,
        "export": {"size": o.export_size, "fit": o.fit} if o.export_size else None,
        "relationships_read": filt.read,
        "usable": sum(p.total for p in pools.values()),
        "dropped": {r: filt.drops[r] for r in DROP_REASONS},
        # an image listed again is read once, from its first entry (its relationships count as dropped)
        "entries_repeated": {"image_data": image_data_repeats, "relationships": filt.entries_repeated},
        "per_predicate": {
            p: {
                "usable": pools[p].total,
                "usable_images": len(pools[p].images),
                "train": len(train[p]),
                "val": len(val[p]),
                "raw_forms": dict(filt.raw_forms[p].most_common(10)),
            }
            for p in preds
        },
        "splits": {
            name: {
                "file": f"{o.prefix}_{name}.jsonl",
                "items": len(items),
                "images": len({c.image_id for c in items}),
            }
            for name, items in split_items.items()
        },
        "images_resized_to_annotation": resized,
        "unmapped_predicates_top": dict(filt.unmapped.most_common(30)),
    }
    write_text(os.path.join(out, f"{o.prefix}_counts.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _record(c: Candidate, info, src: str, out: str, image_dir: str | None, o: VGOptions) -> SuiteRecord:
    size = (info.width, info.height)
    meta = {"vg_image_id": c.image_id, "vg_relationship": c.rel_key, "vg_predicate": c.raw_predicate}
    s_box, o_box, image = c.subject_box, c.object_box, src
    if image_dir is not None:
        fit = fit_square(size, o.export_size, o.fit)
        s_box, o_box = transform_box(s_box, size, fit)[0], transform_box(o_box, size, fit)[0]
        image = os.path.join(image_dir, f"{c.image_id}.jpg")
        meta.update(source_image=_rel(src, out), source_size=list(size),
                    source_subject_box=list(c.subject_box), source_object_box=list(c.object_box))
        size = (o.export_size, o.export_size)
    return SuiteRecord(
        id=f"vg{c.image_id}_{c.rel_key}",
        image=_rel(image, out),
        image_size=size,
        subject=c.subject,
        predicate=c.predicate,
        object=c.object,
        subject_box=tuple(round(v, 2) for v in s_box),
        object_box=tuple(round(v, 2) for v in o_box),
        meta=meta,
    )


def _rel(path: str, start: str) -> str:
    """Paths in a split are relative to the split's folder (absolute if that is impossible)."""
    try:
        return os.path.relpath(os.path.abspath(path), start)
    except ValueError:
        return os.path.abspath(path)
