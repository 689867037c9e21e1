"""The lab's data as ordinary relbench JSONL suites (docs/vg.md's schema), photos as PNG files.

The arms train on these files with `relbench train` exactly as a user trains on Visual
Genome splits; scoring reads the test suite with `relbench run`. A quarter of the 432 lab
triples is held out of training (val and test draw from it with layouts of their own), so the
scores measure drawing relations for object pairs and layouts not seen in training.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from relbench.data import Triple
from relbench.lab.world import COLOURS, PREDICATES, SHAPES, SIZE, Scene, render_scene


def _record(scene: Scene, image: str | None) -> dict:
    t = scene.graph[0]
    rec = {"id": None, "subject": t.subject, "predicate": t.predicate, "object": t.object, "meta": {"layout_seed": scene.seed}}
    if image is not None:
        from relbench.shapes.world import layout, pixel_box, scene_rng

        objs = {o.name: o for o in layout(scene.graph, scene_rng(scene.seed, scene.graph, "lab"), (SIZE, SIZE), "satisfy")}
        rec.update(image=image, image_size=[SIZE, SIZE],
                   subject_box=[float(v) for v in pixel_box(objs[t.subject])],
                   object_box=[float(v) for v in pixel_box(objs[t.object])])
    return rec


def _triples() -> list[Triple]:
    return [Triple(f"{c1} {s1}", p, f"{c2} {s2}") for c1 in COLOURS for s1 in SHAPES for p in PREDICATES
            for c2 in COLOURS if c2 != c1 for s2 in SHAPES]


def split_triples(seed: int, held_out: float = 0.25) -> tuple[list[Triple], list[Triple]]:
    """(train triples, held-out triples): a fixed share of all 432 lab triples never trained on."""
    all_t = _triples()
    random.Random(f"lab-split:{seed}").shuffle(all_t)
    k = int(round(len(all_t) * held_out))
    return all_t[k:], all_t[:k]


def _scenes_from(triples: list[Triple], n: int, seed: int, salt: str) -> list[Scene]:
    out = []
    for i in range(n):
        rng = random.Random(f"lab:{salt}:{seed}:{i}")
        out.append(Scene((rng.choice(triples),), rng.randrange(1 << 30)))
    return out


def write_suites(out: str | Path, n_train: int, n_val: int, n_test: int, seed: int = 0) -> dict[str, Path]:
    """train.jsonl (with photos) over the training triples; val.jsonl and test.jsonl (with their
    reference photos) over the held-out triples, with layouts of their own."""
    from PIL import Image

    from relbench.atomic import write_text

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    train_t, held_t = split_triples(seed)
    paths = {}
    for split, n, pool in (("train", n_train, train_t), ("val", n_val, held_t), ("test", n_test, held_t)):
        lines = []
        for i, s in enumerate(_scenes_from(pool, n, seed, f"suite-{split}")):
            name = f"images/{split}-{i:05d}.png"
            if not (out / name).exists():
                Image.fromarray(render_scene(s)).save(out / name)
            rec = _record(s, name)
            rec["id"] = f"lab-{split}-{i:05d}"
            lines.append(json.dumps(rec))
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "\n".join(lines) + "\n")
    return paths
