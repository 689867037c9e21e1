"""``sample: N``: a seeded subset of a suite that keeps its mix of predicates.

``limit: N`` takes the first N items, and suites are often ordered by predicate (the shapes
world lists all of "above", then all of "below", ...), so a small limit tests one or two
relations. A sample allots N to the predicates in proportion to their share of the suite
(largest remainders first, ties in a seeded order) and draws each predicate's items at random.
"""

from __future__ import annotations

import random
from fractions import Fraction

from relbench.spec.data import SuiteItem


def stratum(item: SuiteItem) -> tuple[str, ...]:
    """The predicates of an item's graph: what a sample keeps the proportions of."""
    return tuple(sorted({t.predicate for t in item.graph}))


def sample_items(items: list[SuiteItem], n: int, seed: int) -> list[SuiteItem]:
    """``n`` of ``items`` (all of them when there are no more), in the suite's order.

    The same (items, n, seed) always gives the same subset, on any machine."""
    if n >= len(items):
        return list(items)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(stratum(item), []).append(i)
    rng = random.Random(f"relbench-sample:{seed}")
    keys = sorted(groups)
    rng.shuffle(keys)  # the order in which equal remainders get the items left over
    quota = {k: Fraction(n * len(groups[k]), len(items)) for k in keys}
    take = {k: int(q) for k, q in quota.items()}
    for k in sorted(keys, key=lambda k: quota[k] - take[k], reverse=True)[: n - sum(take.values())]:
        take[k] += 1
    chosen = sorted(i for k in keys for i in rng.sample(groups[k], take[k]))
    return [items[i] for i in chosen]
