from relbench.spec.data import SuiteItem, Triple
from relbench.spec.negatives import build_cases, negatives_for, replace, swap
from relbench.spec.predicates import load_vocabulary
import random

V = load_vocabulary()


def item(s, p, o, id_="t0"):
    return SuiteItem(id=id_, graph=(Triple(s, p, o),))


def test_swap_reverses_asymmetric():
    assert swap((Triple("dog", "riding", "horse"),), V) == (Triple("horse", "riding", "dog"),)


def test_swap_never_for_symmetric_predicates():
    assert swap((Triple("dog", "near", "horse"),), V) is None
    assert swap((Triple("dog", "around", "horse"),), V) is None  # alias of a symmetric predicate
    kinds = [k for k, _ in negatives_for(item("dog", "near", "horse"), ["swap", "replace"], V, 0)]
    assert kinds == ["replace"]


def test_replace_uses_declared_contrast():
    rng = random.Random(0)
    assert replace((Triple("dog", "holding", "ball"),), V, rng) == (Triple("dog", "wearing", "ball"),)
    assert replace((Triple("a", "above", "b"),), V, rng) == (Triple("a", "below", "b"),)
    assert replace((Triple("a", "in front of", "b"),), V, rng) == (Triple("a", "behind", "b"),)
    for _ in range(20):  # 'on' contrasts with 'below' and 'in'; never with itself
        assert replace((Triple("a", "on", "b"),), V, rng)[0].predicate in ("below", "in")


def test_negatives_deterministic_and_order_independent():
    items = [item("a", "on", "b", f"t{i}") for i in range(30)]
    c1, _ = build_cases(items, [0, 1], ["swap", "replace"], V, "one", 7)
    c2, _ = build_cases(list(reversed(items)), [0, 1], ["swap", "replace"], V, "one", 7)
    assert sorted((c.id, c.neg, c.negative_kind) for c in c1) == sorted((c.id, c.neg, c.negative_kind) for c in c2)
    kinds = {c.negative_kind for c in c1}
    assert kinds == {"swap", "replace"}  # one per item, both kinds used over 30 items
    c3, _ = build_cases(items, [0, 1], ["swap", "replace"], V, "one", 8)
    assert [c.neg for c in c3] != [c.neg for c in c1]


def test_case_counts_and_seeds_share_the_negative():
    items = [item("a", "riding", "b", "r"), item("a", "near", "b", "n"), item("a", "eating", "b", "e")]
    one, skipped = build_cases(items, [0, 1, 2], ["swap", "replace"], V, "one", 0)
    assert len(one) == 9 and skipped == []
    for tid in "rne":
        negs = {c.neg for c in one if c.item_id == tid}
        assert len(negs) == 1
    allc, _ = build_cases(items, [0, 1, 2], ["swap", "replace"], V, "all", 0)
    assert len(allc) == (2 + 1 + 2) * 3  # near cannot be swapped
    assert len({c.id for c in allc}) == len(allc)


def test_items_without_any_negative_are_reported():
    v = load_vocabulary([{"name": "touching", "symmetric": True}])
    cases, skipped = build_cases([item("a", "touching", "b", "x")], [0], ["swap", "replace"], v)
    assert cases == [] and skipped == ["x"]


def test_multi_triple_graphs_corrupt_one_triple():
    g = (Triple("man", "riding", "horse"), Triple("horse", "on", "grass"))
    negs = negatives_for(SuiteItem("m", g), ["swap"], V, 0)
    (kind, neg), = negs
    assert kind == "swap" and len(neg) == 2
    assert sum(a != b for a, b in zip(g, neg)) == 1
