"""The lab's data as ordinary relbench JSONL suites (docs/vg.md's schema), photos as PNG files.

The arms train on these files with `relbench train` exactly as a user trains on Visual
Genome splits; scoring reads the test suite with `relbench run`. A third of the 432 lab
triples is held out of training, and test and val split it without sharing a triple, so the
scores measure drawing relations for object pairs and layouts not seen in training, and the
checkpoint picked on val was not picked on any test image.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from relbench.spec.data import Triple
from relbench.lab.world import SIZE, WORLDS, Scene, World, place_scene, render_scene, triples


def _record(scene: Scene, image: str | None, w: World) -> dict:
    t = scene.graph[0]
    rec = {"id": None, "subject": t.subject, "predicate": t.predicate, "object": t.object, "meta": {"layout_seed": scene.seed}}
    if image is not None:
        from relbench.shapes.world import pixel_box

        objs = {o.name: o for o in place_scene(scene, w)}
        rec.update(image=image, image_size=[SIZE, SIZE],
                   subject_box=[float(v) for v in pixel_box(objs[t.subject])],
                   object_box=[float(v) for v in pixel_box(objs[t.object])])
    return rec


def split_triples(seed: int, w: World = WORLDS["lab"]) -> tuple[list[Triple], list[Triple]]:
    """(train triples, evaluation triples): a fixed share (w.held_out) of the world's triples
    (144 of 432 in the lab world) never trained on; a world holding none out evaluates on all."""
    all_t = triples(w)
    random.Random(f"lab-split:{seed}").shuffle(all_t)
    k = int(round(len(all_t) * w.held_out))
    return (all_t[k:], all_t[:k]) if k else (all_t, all_t)


def _scenes_from(pool: list[Triple], n: int, seed: int, salt: str) -> list[Scene]:
    """Training scenes: triples drawn with replacement, each with a layout of its own (a repeated
    triple is a new photo)."""
    out = []
    for i in range(n):
        rng = random.Random(f"lab:{salt}:{seed}:{i}")
        out.append(Scene((rng.choice(pool),), rng.randrange(1 << 30)))
    return out


def _distinct_scenes(pool: list[Triple], n: int, seed: int, salt: str, what: str = "") -> list[Scene]:
    """Evaluation scenes: ``n`` distinct triples. A generator's images depend on the triple (its
    prompt and graph) and the sampling seed, not on the reference layout, so a repeated triple
    would be the same images scored twice as if independent, and intervals would be too narrow;
    more evaluation images come from more seeds, which the runner clusters by triple."""
    from relbench.errors import UserError

    if n > len(pool):
        raise UserError(f"lab: {n} evaluation cases asked for, but the world has only {len(pool)} evaluation "
                        f"triples{what}; use fewer cases and more seeds")
    rng = random.Random(f"lab:{salt}:{seed}")
    return [Scene((t,), rng.randrange(1 << 30)) for t in rng.sample(pool, n)]


def _apart(w: World) -> bool:
    """Whether val keeps off test's triples: where the world holds triples out. A world holding
    none out (the smoke world, 4 triples) evaluates val and test on all of them; its lab
    evaluates once, so nothing is picked on val."""
    return bool(w.held_out)


def eval_triples_needed(n_val: int, n_test: int, w: World) -> int:
    """Distinct held-out triples that val and test of these sizes use together."""
    return n_val + n_test if _apart(w) else max(n_val, n_test)


def write_suites(out: str | Path, n_train: int, n_val: int, n_test: int, seed: int = 0,
                 w: World = WORLDS["lab"]) -> dict[str, Path]:
    """train.jsonl (with photos) over the training triples; test.jsonl and val.jsonl (with their
    reference photos) over distinct held-out triples, with layouts of their own, val's none of
    test's: the arms' best checkpoints are picked on val, and a val image that is also a test
    image (a generator's images depend on the triple and the seed only) would make that pick
    partly a pick on test (except in a world holding nothing out: ``_apart``). Every photo is
    rendered again (milliseconds each), so a directory reused with another world or seed never
    keeps a stale one."""
    from PIL import Image

    from relbench.io.atomic import write_text

    train_t, held_t = split_triples(seed, w)
    # every split's scenes are chosen (and a size the world cannot hold refused) before any file is written
    test = _distinct_scenes(held_t, n_test, seed, "suite-test")
    in_test = {s.graph[0] for s in test}
    val_pool = [t for t in held_t if t not in in_test] if _apart(w) else held_t
    what = f" outside the test suite's {n_test}" if _apart(w) else ""
    chosen = {"train": _scenes_from(train_t, n_train, seed, "suite-train"),
              "val": _distinct_scenes(val_pool, n_val, seed, "suite-val", what),
              "test": test}
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, scenes in chosen.items():
        lines = []
        for i, s in enumerate(scenes):
            name = f"images/{split}-{i:05d}.png"
            Image.fromarray(render_scene(s, w)).save(out / name)
            rec = _record(s, name, w)
            rec["id"] = f"lab-{split}-{i:05d}"
            lines.append(json.dumps(rec))
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "\n".join(lines) + "\n")
    return paths
