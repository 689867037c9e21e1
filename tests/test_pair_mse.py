import numpy as np
import pytest

from relbench.metrics.pair_mse import PairMSE, pair_mse
from relbench.spec.data import Case, Triple
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.spec.predicates import load_vocabulary


def test_pair_mse_by_hand():
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    b = np.zeros((2, 2, 3), dtype=np.uint8)
    b[0, 0] = (255, 0, 0)  # one channel of one pixel differs by 255
    b[1, 1] = (10, 10, 10)  # three channels differ by 10
    # (255^2 + 3 * 10^2) / 12 channels-pixels
    assert pair_mse(a, b) == pytest.approx((65025 + 300) / 12)
    assert pair_mse(a, a) == 0.0


def test_no_uint8_wraparound():
    a = np.full((1, 1, 3), 0, dtype=np.uint8)
    b = np.full((1, 1, 3), 255, dtype=np.uint8)
    assert pair_mse(a, b) == 65025.0 and pair_mse(b, a) == 65025.0


def test_metric_scores_samples_and_none_without_negative():
    g = (Triple("a b", "on", "c d"),)
    case = Case("c", "t", g, g, "swap", 0)
    imgs = {"p": np.zeros((2, 2, 3), np.uint8), "n": np.full((2, 2, 3), 2, np.uint8)}
    m = PairMSE(PairMSE.Args(), Context(vocab=load_vocabulary()))
    rows = m.score([Sample(case, "r", "", "", "p", "n", _load=imgs.get, texts=("a", "b")),
                     Sample(case, "r", "", "", "p", None, _load=imgs.get, texts=("a", "b"))])
    assert rows == [{"pair_mse": 4.0}, {"pair_mse": None}]
    assert [a.key for a in m.aggregates()] == ["mse_mean", "mse_std"]


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_both_prompt_modes_read_only_pixels(mode):
    from relbench.testing.samples import make_sample

    case = Case("c", "t", (Triple("dog", "riding", "horse"),), (Triple("horse", "riding", "dog"),), "swap", 0)
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (255, 0, 0)
    imgs = {"p": a, "n": b, "p2": a.copy()}
    s = make_sample(case, "p", "n", imgs.get, mode)
    assert (s.prompt_pos == s.prompt_neg) == (mode == "neutral")
    rows = PairMSE(PairMSE.Args(), Context(vocab=load_vocabulary())).score(
        [s, make_sample(case, "p", "p2", imgs.get, mode)])
    assert rows == [{"pair_mse": 65025 / 12}, {"pair_mse": 0.0}]  # one channel of 12 differs by 255
