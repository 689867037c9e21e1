"""How many CLIP encodings does clip_alignment do, against the seed's per-comparison protocol?

The seed encoded, for each of the 4 comparisons of a case, its image and its text: 4 image +
4 text encodings per case. clip_alignment encodes each unique image key and each unique prompt
once (seeds of one triple share prompts; a text-only generator shares one image for g+ and g-).
Runs offline with a tiny random open_clip model; the counts do not depend on the model.

    python benchmarks/clip_encodings.py --triples 160 --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relbench.testing.models.clip import make_tiny_checkpoint  # noqa: E402
from relbench.metrics.clip_alignment import ClipAlignment  # noqa: E402
from relbench.spec.data import Case, Triple  # noqa: E402
from relbench.plugin.context import Context  # noqa: E402
from relbench.plugin.metric import Sample  # noqa: E402
from relbench.spec.predicates import load_vocabulary  # noqa: E402


def make_samples(triples: int, seeds: int, shared_image: bool, size: int = 32) -> list[Sample]:
    """Cases of a swap suite: triple t has prompts p+_t / p-_t and one image pair per seed."""
    rng = np.random.RandomState(0)
    store: dict[str, np.ndarray] = {}

    def load(key):
        if key not in store:
            store[key] = rng.randint(0, 256, (size, size, 3), dtype=np.uint8)
        return store[key]

    samples = []
    for t in range(triples):
        pos, neg = Triple(f"thing{t}", "left of", f"other{t}"), Triple(f"other{t}", "left of", f"thing{t}")
        for s in range(seeds):
            case = Case(id=f"t{t}s{s}", item_id=f"t{t}", pos=(pos,), neg=(neg,), negative_kind="swap", seed=s)
            kpos = f"img-{t}-{s}-pos"
            kneg = kpos if shared_image else f"img-{t}-{s}-neg"
            samples.append(Sample(case, "run", pos.text(), neg.text(), kpos, kneg, _load=load,
                                  texts=(pos.text(), neg.text())))
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triples", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)

    ctx = Context(vocab=load_vocabulary())
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        model, ckpt = make_tiny_checkpoint(tmp)
        print(f"{'run':<32} {'cases':>6} {'images ours/naive':>18} {'texts ours/naive':>17} {'max ratio':>9} {'s':>6}")
        for label, shared in (("graph-conditioned (2 images)", False), ("text-only (1 image per case)", True)):
            samples = make_samples(args.triples, args.seeds, shared)
            metric = ClipAlignment(ClipAlignment.Args(model=model, checkpoint=ckpt, batch_size=args.batch_size), ctx)
            t0 = time.perf_counter()
            metric.score(samples)
            dt = time.perf_counter() - t0
            n = len(samples)
            ours, naive = metric.encodings, {"image": 4 * n, "text": 4 * n}
            ratio = max(ours["image"] / naive["image"], ours["text"] / naive["text"])
            worst = max(worst, ratio)
            print(f"{label:<32} {n:>6} {ours['image']:>8}/{naive['image']:<9} {ours['text']:>7}/{naive['text']:<9}"
                  f" {ratio:>9.3f} {dt:>6.2f}")
    ok = worst <= 0.5
    print(f"images and texts each at most half the naive count: {'OK' if ok else 'FAIL'} (worst {worst:.3f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
