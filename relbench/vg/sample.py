"""Balanced, image-disjoint, seeded sampling of candidates into train and val.

Each candidate gets a priority: a hash of (seed, image_id, relationship key). Sampling walks a
predicate's candidates in priority order, so the result is a seeded shuffle that does not
depend on the order of relationships.json. Only the ``pool`` lowest-priority candidates per
predicate are kept while streaming (bottom-k sampling), which keeps memory small; the walk over
the pool gives exactly what a walk over all candidates would, unless it runs off the pool's end
(then the shortfall message says so).

Disjointness: an image belongs to at most one split. Predicates are filled rarest first; within
a predicate, each candidate in priority order goes to val if val still needs examples and its
image is not in train, else to train if train needs examples and its image is not in val.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

from relbench.vg.read import Candidate


def quotas(total: int, predicates: list[str]) -> dict[str, int]:
    """``total`` split evenly; the remainder goes one each to the first predicates listed."""
    base, extra = divmod(total, len(predicates))
    return {p: base + (1 if i < extra else 0) for i, p in enumerate(predicates)}


def priority(seed: int, cand: Candidate) -> int:
    digest = hashlib.blake2b(f"{seed}:{cand.image_id}:{cand.rel_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class Pool:
    """The ``size`` lowest-priority candidates of one predicate, plus totals over all of them."""

    size: int
    total: int = 0
    images: set[int] = field(default_factory=set)
    _heap: list[tuple[int, str, Candidate]] = field(default_factory=list)  # (-priority, id, cand)

    def add(self, prio: int, cand: Candidate) -> None:
        self.total += 1
        self.images.add(cand.image_id)
        item = (-prio, f"{cand.image_id}:{cand.rel_key}", cand)
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    @property
    def truncated(self) -> bool:
        return self.total > len(self._heap)

    def ordered(self) -> list[Candidate]:
        return [c for _, _, c in sorted(self._heap, reverse=True)]


@dataclass
class Shortfall:
    predicate: str
    usable: int  # candidates after filtering
    need_train: int
    need_val: int
    got_train: int
    got_val: int
    pool_truncated: bool

    def describe(self) -> str:
        need = self.need_train + self.need_val
        if self.usable < need:
            return f"{self.predicate!r} has {self.usable} usable, needs {need} ({self.need_train} train + {self.need_val} val)"
        text = (
            f"{self.predicate!r} filled only {self.got_train}/{self.need_train} train + {self.got_val}/{self.need_val} val "
            f"of {self.usable} usable, because their images are taken by the other split"
        )
        return text + (" within the sampling pool (raise --pool)" if self.pool_truncated else "")


def assign(
    pools: dict[str, Pool], train_q: dict[str, int], val_q: dict[str, int]
) -> tuple[dict[str, list[Candidate]], dict[str, list[Candidate]], list[Shortfall]]:
    """Fill every predicate's train and val quotas with image-disjoint candidates."""
    split_of: dict[int, str] = {}
    train: dict[str, list[Candidate]] = {}
    val: dict[str, list[Candidate]] = {}
    short: list[Shortfall] = []
    for pred in sorted(pools, key=lambda p: (pools[p].total, p)):
        t, v = [], []
        for cand in pools[pred].ordered():
            if len(t) >= train_q[pred] and len(v) >= val_q[pred]:
                break
            owner = split_of.get(cand.image_id)
            if len(v) < val_q[pred] and owner != "train":
                v.append(cand)
                split_of[cand.image_id] = "val"
            elif len(t) < train_q[pred] and owner != "val":
                t.append(cand)
                split_of[cand.image_id] = "train"
        train[pred], val[pred] = t, v
        if len(t) < train_q[pred] or len(v) < val_q[pred]:
            short.append(Shortfall(pred, pools[pred].total, train_q[pred], val_q[pred], len(t), len(v), pools[pred].truncated))
    return train, val, short
