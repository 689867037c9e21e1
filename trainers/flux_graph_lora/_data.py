"""Training examples from the seed's JSONL splits (relbench's JSONL suite schema, docs/vg.md).

Each example is a suite item with its photo (the teacher-forced target), the relation and
neutral prompts, and every applicable negative from the harness's own builder, so training
and evaluation corrupt relations the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relbench.spec.data import Graph
from relbench.errors import UserError
from relbench.spec.negatives import NegativeSource, negatives_for
from relbench.spec.predicates import Vocabulary
from relbench.spec.prompts import neutral_prompt, relation_prompt
from relbench.trainers.state import sample_seed


@dataclass(frozen=True)
class Example:
    id: str
    where: str  # FILE: item id, for messages
    image: str
    pos: Graph
    negs: tuple[tuple[str, Graph], ...]  # (kind, g-), possibly empty
    prompt: str  # relation prompt of g+
    neutral: str
    neg_prompts: tuple[str, ...]  # relation prompts of the negatives (for the CLIP term)


def load_examples(path: str, vocab: Vocabulary, images_root: str | None, kinds: list[str], neg_seed: int,
                  source: NegativeSource | None = None, top_k: int = 1) -> list[Example]:
    """Every line of a JSONL split as an Example; one-line UserErrors for bad lines or missing photos.
    ``source``: the run hard negatives are read from (relbench.results.negative_source)."""
    from relbench.suites.jsonl import load_jsonl_suite

    items = load_jsonl_suite(path, vocab, images_root, check_images=True,
                             require_image="training needs the photo of g+")
    out = []
    for item in items:
        negs = tuple(negatives_for(item, kinds, vocab, neg_seed, source, top_k))
        out.append(Example(item.id, f"{path}: item {item.id!r}", item.reference.image, item.graph, negs,
                           relation_prompt(item.graph, vocab), neutral_prompt(item.graph),
                           tuple(relation_prompt(g, vocab) for _, g in negs)))
    return out


def negative_source(cfg, vocab: Vocabulary, source: str) -> NegativeSource | None:
    """The run ``objective.negatives.confusion`` names, read and checked before any model loads."""
    from relbench.results.negative_source import load_negative_source

    where = f"{source}: objective.negatives"
    found = load_negative_source(cfg.objective.negatives, where)
    return None if found is None else found.checked(vocab, f"{where}.confusion")


def check_vocabulary(encoder, examples: list[Example]) -> None:
    """A closed-vocabulary encoder must know every name of g+ and g- before the first step."""
    lookup = getattr(encoder, "_lookup", None)
    if lookup is None:
        return
    for ex in examples:
        for graph in (ex.pos, *(g for _, g in ex.negs)):
            for t in graph:
                try:
                    lookup(t.subject, "object"), lookup(t.predicate, "predicate"), lookup(t.object, "object")
                except UserError as exc:
                    raise UserError(f"{ex.where}: {exc}") from None


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(sample_seed("order", seed, epoch)).shuffle(order)
    return order


def load_image(path: str, size: int):
    """(3, size, size) float tensor in [-1, 1]: shorter side resized to ``size``, centre crop
    (the same policy as `relbench data vg --export-images --fit crop`)."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            im = im.resize((nw, nh), Image.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0
