"""Every rule set against hand-made boxes. Boxes are (x_min, y_min, x_max, y_max), y down;
the expected values in comments are worked out by hand from the rule definitions."""

import pytest

from relbench.metrics.spatial import (
    geneval_relations,
    relation_holds,
    t2i_compbench_image_score,
    t2i_compbench_position_score,
)
from relbench.errors import UserError
from relbench.spec.predicates import load_vocabulary

A = (0, 0, 10, 10)


def holds(rule, pred, a, b):
    return relation_holds(rule, pred, a, b)


# --- GenEval -----------------------------------------------------------------------------


def test_geneval_clear_left():
    # offset -30, revised -(30 - 0.1*(10+10)) = -28, dx = -28/30 = -0.93 < -0.5
    b = (30, 0, 40, 10)
    assert geneval_relations(A, b) == {"left of"}
    assert holds("geneval", "left of", A, b) is True
    assert holds("geneval", "right of", A, b) is False
    assert holds("geneval", "above", A, b) is False
    assert holds("geneval", "right of", b, A) is True


def test_geneval_touching_boxes_are_left():
    # centers 5 and 15: revised -(10 - 2) = -8, dx = -0.8
    assert holds("geneval", "left of", A, (10, 0, 20, 10)) is True


def test_geneval_identical_and_within_margin_have_no_relation():
    assert geneval_relations(A, A) == set()
    # offset -1 is inside the 0.1*(10+10) = 2 px margin -> revised 0 -> no relation
    b = (1, 0, 11, 10)
    assert geneval_relations(A, b) == set()
    assert holds("geneval", "left of", A, b) is False


def test_geneval_diagonal_gives_two_relations():
    # offset (-20, -20), revised (-18, -18), / 28.28 -> (-0.64, -0.64): left of AND above
    assert geneval_relations(A, (20, 20, 30, 30)) == {"left of", "above"}


def test_geneval_dominant_axis_threshold():
    # offset (-20, -30), revised (-18, -28), norm 36.06 -> dx -0.499 (not left), dy -0.777
    b = (20, 30, 30, 40)
    assert geneval_relations(A, b) == {"above"}
    assert holds("geneval", "left of", A, b) is False


def test_geneval_point_boxes_use_raw_offset():
    # zero-size boxes: no margin; offset (-3, -4)/5 -> (-0.6, -0.8)
    assert geneval_relations((0, 0, 0, 0), (3, 4, 3, 4)) == {"left of", "above"}


def test_geneval_covers_only_its_four_relations():
    for pred in ("near", "on", "in", "behind", "far from"):
        assert holds("geneval", pred, A, (30, 0, 40, 10)) is None


# --- VISOR -------------------------------------------------------------------------------


def test_visor_centroid_no_margin():
    b = (1, 0, 11, 10)  # centers 5 vs 6: left for VISOR although GenEval sees no relation
    assert holds("visor", "left of", A, b) is True
    assert holds("visor", "right of", A, b) is False
    assert holds("visor", "above", A, b) is False  # same cy: strict comparison
    assert holds("visor", "below", A, b) is False


def test_visor_tiny_offset_and_identical():
    assert holds("visor", "left of", A, (0.0001, 0, 10.0001, 10)) is True
    for pred in ("left of", "right of", "above", "below"):
        assert holds("visor", pred, A, A) is False


def test_visor_both_axes():
    b = (20, 30, 30, 40)
    assert holds("visor", "left of", A, b) is True
    assert holds("visor", "above", A, b) is True
    assert holds("visor", "below", b, A) is True
    assert holds("visor", "near", A, b) is None


# --- T2I-CompBench -----------------------------------------------------------------------


def test_t2i_iou_point_two_gives_half():
    a, b = (0, 0, 6, 10), (4, 0, 10, 10)  # overlap 20, union 100 -> IoU 0.2; dx = 4 > 0
    assert t2i_compbench_position_score("left of", a, b) == 0.5  # 0.1 / 0.2
    assert holds("t2i_compbench", "left of", a, b) is False  # bool = full credit only
    assert t2i_compbench_position_score("right of", a, b) == 0.0


def test_t2i_iou_exactly_threshold_is_full_credit():
    a, b = (0, 0, 11, 10), (9, 0, 20, 10)  # overlap 20, union 200 -> IoU 0.1 -> 0.1/0.1
    assert t2i_compbench_position_score("left of", a, b) == 1.0
    assert holds("t2i_compbench", "left of", a, b) is True


def test_t2i_touching_and_identical():
    assert t2i_compbench_position_score("left of", A, (10, 0, 20, 10)) == 1.0
    assert t2i_compbench_position_score("left of", A, A) == 0.0  # dx = 0 is not > 0
    assert t2i_compbench_position_score("near", A, A) == 1.0


def test_t2i_dominant_axis_required():
    b = (20, 30, 30, 40)  # dx 20, dy 30: right way for left, but y dominates -> 0
    assert t2i_compbench_position_score("left of", A, b) == 0.0
    assert t2i_compbench_position_score("above", A, b) == 1.0  # 'on the top of': dy > 0
    assert t2i_compbench_position_score("below", A, b) == 0.0
    assert t2i_compbench_position_score("below", b, A) == 1.0


def test_t2i_near_is_absolute_pixels_with_or():
    assert t2i_compbench_position_score("near", A, (200, 200, 210, 210)) == 0.75  # 150/200
    assert holds("t2i_compbench", "near", A, (200, 200, 210, 210)) is False
    # |dx| = 100 < 150 suffices even with dy = 300 (their rule uses OR)
    assert t2i_compbench_position_score("next to", A, (100, 300, 110, 310)) == 1.0
    assert holds("t2i_compbench", "next to", A, (100, 300, 110, 310)) is True


def test_t2i_uncovered_predicates():
    for pred in ("on", "in front of", "far from", "in"):
        assert holds("t2i_compbench", pred, A, (20, 0, 30, 10)) is None
    assert t2i_compbench_position_score("on", A, A) is None


def test_t2i_image_score():
    assert t2i_compbench_image_score(1.0, 0.8, 0.6) == pytest.approx(0.85)  # .2 + .15 + .5
    assert t2i_compbench_image_score(0.0, 0.9, 0.9) == 0.0  # 0.45 < 0.5 -> zeroed
    assert t2i_compbench_image_score(0.5, 0.5, 0.5) == 0.5  # not below 0.5: kept


# --- relbench ----------------------------------------------------------------------------


def test_relbench_directions_equal_geneval():
    for b in [(30, 0, 40, 10), (10, 0, 20, 10), (1, 0, 11, 10), (20, 20, 30, 30), (20, 30, 30, 40), A]:
        for pred in ("left of", "right of", "above", "below"):
            assert holds("relbench", pred, A, b) == holds("geneval", pred, A, b)


def test_relbench_near_far():
    # s = (10 + 10)/2 = 10: near iff gap <= 2.5, far iff gap >= 7.5
    assert holds("relbench", "near", A, (12, 0, 22, 10)) is True  # gap 2
    assert holds("relbench", "near", A, (12.5, 0, 22.5, 10)) is True  # gap 2.5 (boundary)
    assert holds("relbench", "near", A, (13, 0, 23, 10)) is False  # gap 3
    assert holds("relbench", "far from", A, (17.5, 0, 27.5, 10)) is True  # gap 7.5 (boundary)
    assert holds("relbench", "far from", A, (15, 0, 25, 10)) is False  # gap 5: neither
    assert holds("relbench", "near", A, (15, 0, 25, 10)) is False
    # diagonal gap = hypot(3, 4) = 5
    assert holds("relbench", "near", A, (13, 14, 23, 24)) is False
    assert holds("relbench", "far from", A, (13, 14, 23, 24)) is False
    # touching, overlapping, identical: gap 0
    assert holds("relbench", "near", A, (10, 0, 20, 10)) is True
    assert holds("relbench", "near", A, A) is True
    assert holds("relbench", "far from", A, A) is False
    # aliases resolve to near
    assert holds("relbench", "beside", A, (12, 0, 22, 10)) is True
    assert holds("relbench", "next to", A, (13, 0, 23, 10)) is False


def test_relbench_near_uses_longer_sides():
    # s = (max(10,2) + max(2,20))/2 = 15 -> near iff gap <= 3.75; gap = 4 - 2 = 2
    assert holds("relbench", "near", (0, 0, 10, 2), (0, 4, 2, 24)) is True


def test_relbench_in():
    big = (0, 0, 10, 10)
    assert holds("relbench", "in", (2, 2, 8, 8), big) is True  # nested
    assert holds("relbench", "in", big, (2, 2, 8, 8)) is False  # container in content
    assert holds("relbench", "in", big, big) is False  # identical: not smaller
    assert holds("relbench", "in", big, (1, 0, 100, 100)) is True  # 90 of 100 inside (boundary)
    assert holds("relbench", "in", big, (1.1, 0, 100, 100)) is False  # 89 inside
    assert holds("relbench", "inside", (2, 2, 8, 8), big) is True


TABLE = (0, 50, 100, 100)  # h 50, centre y 75, contact band starts at 50 - 7.5 = 42.5


@pytest.mark.parametrize("pred", ["on", "sitting on", "standing on", "riding", "on top of", "rides"])
def test_relbench_on_family(pred):
    assert holds("relbench", pred, (40, 20, 60, 50), TABLE) is True  # touching the top
    assert holds("relbench", pred, (40, 12.5, 60, 42.5), TABLE) is True  # band edge
    assert holds("relbench", pred, (40, 20, 60, 40), TABLE) is False  # floating above
    assert holds("relbench", pred, (40, 45, 60, 75), TABLE) is True  # sunk to the centre
    assert holds("relbench", pred, (40, 45, 60, 76), TABLE) is False  # below the centre
    assert holds("relbench", pred, (40, 50, 60, 70), TABLE) is False  # top not above B's top
    assert holds("relbench", pred, (90, 20, 110, 50), TABLE) is True  # centre x on the edge
    assert holds("relbench", pred, (95, 20, 115, 50), TABLE) is False  # centre x off B
    assert holds("relbench", pred, TABLE, TABLE) is False  # identical


BRANCH = (0, 0, 100, 20)  # h 20, centre y 10, band ends at 20 + 3 = 23


def test_relbench_hanging_from():
    assert holds("relbench", "hanging from", (40, 15, 60, 40), BRANCH) is True
    assert holds("relbench", "hanging from", (40, 23, 60, 40), BRANCH) is True  # band edge
    assert holds("relbench", "hanging from", (40, 25, 60, 40), BRANCH) is False  # detached
    assert holds("relbench", "hanging from", (40, 5, 60, 40), BRANCH) is False  # top above centre
    assert holds("relbench", "hanging from", (40, 15, 60, 20), BRANCH) is False  # bottom not below B
    assert holds("relbench", "hanging from", BRANCH, BRANCH) is False


def test_relbench_front_behind():
    b = (5, 5, 15, 9)  # overlap 5 x 4; A's bottom 10 > 9
    assert holds("relbench", "in front of", A, b) is True
    assert holds("relbench", "behind", A, b) is False
    assert holds("relbench", "behind", b, A) is True
    assert holds("relbench", "in front of", A, (20, 0, 30, 5)) is False  # disjoint
    # touching counts: an occluded object's visible box can just abut its occluder
    assert holds("relbench", "in front of", A, (10, 0, 20, 5)) is True
    assert holds("relbench", "in front of", A, (10.5, 0, 20, 5)) is False  # a gap
    assert holds("relbench", "in front of", A, A) is False  # tie on bottoms
    assert holds("relbench", "behind", A, A) is False


def test_every_geometric_predicate_has_a_relbench_rule():
    vocab = load_vocabulary()
    for p in vocab.predicates.values():
        got = holds("relbench", p.name, A, (20, 0, 30, 10))
        assert (got is None) == (not p.geometric), p.name


@pytest.mark.parametrize("rule", ["relbench", "geneval", "visor", "t2i_compbench"])
@pytest.mark.parametrize("pred", ["eating", "wearing", "holding", "looking at", "carrying"])
def test_non_geometric_never_checkable(rule, pred):
    assert holds(rule, pred, A, (20, 0, 30, 10)) is None


def test_errors_are_user_errors():
    with pytest.raises(UserError, match="unknown rule set"):
        holds("coco", "left of", A, A)
    with pytest.raises(UserError, match="unknown predicate"):
        holds("relbench", "lefft of", A, A)
    with pytest.raises(UserError, match="x_max < x_min"):
        holds("relbench", "left of", (10, 0, 0, 10), A)
