"""The lab's data as ordinary relbench JSONL suites (docs/vg.md's schema), photos as PNG files.

The arms train on these files with `relbench train` exactly as a user trains on Visual
Genome splits; scoring reads the test suite with `relbench run`. Train, val and test triples
come from disjoint salts (and test triples exclude every train triple's text), so the scores
measure drawing relations for object pairs and layouts not seen in training.
"""

from __future__ import annotations

import json
from pathlib import Path

from relbench.lab.world import SIZE, Scene, render_scene, scenes


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


def write_suites(out: str | Path, n_train: int, n_val: int, n_test: int, seed: int = 0) -> dict[str, Path]:
    """train.jsonl (with photos), val.jsonl and test.jsonl (with their reference photos too)."""
    from PIL import Image

    from relbench.atomic import write_text

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    paths = {}
    train_texts: set[str] = set()
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        pool = scenes(n * 3 + 50, seed, f"suite-{split}")
        chosen = []
        for s in pool:
            text = s.graph[0].text()
            if split != "train" and text in train_texts:
                continue
            chosen.append(s)
            if split == "train":
                train_texts.add(text)
            if len(chosen) == n:
                break
        lines = []
        for i, s in enumerate(chosen):
            name = f"images/{split}-{i:05d}.png"
            if not (out / name).exists():
                Image.fromarray(render_scene(s)).save(out / name)
            rec = _record(s, name)
            rec["id"] = f"lab-{split}-{i:05d}"
            lines.append(json.dumps(rec))
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "\n".join(lines) + "\n")
    return paths
