"""pair_mse: how different the g+ and g- images are, pixel for pixel.

A generator that ignores the graph (or the prompt's relation) draws the same image twice and
scores 0; a high value shows sensitivity, not correctness (the seed's lesson).
"""

from __future__ import annotations

from relbench.plugin.metric import Aggregate, Metric
from relbench.plugin.registry import register_metric


def pair_mse(image_pos, image_neg) -> float:
    """Mean over pixels and channels of (pos - neg)^2 on the 0-255 scale."""
    import numpy as np

    a = np.asarray(image_pos, dtype=np.float64)
    b = np.asarray(image_neg, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pair_mse needs images of one size, got {a.shape} and {b.shape}")
    return float(np.mean((a - b) ** 2))


@register_metric("pair_mse")
class PairMSE(Metric):
    """Mean squared pixel difference between img_pos and img_neg (0-255 scale); seed keys mse_mean, mse_std."""

    consumes = frozenset({"images"})

    def columns(self):
        return ["pair_mse"]

    def score(self, samples):
        out = []
        for s in samples:
            pos, neg = s.image_pos, s.image_neg
            out.append({"pair_mse": None if pos is None or neg is None else pair_mse(pos, neg)})
        return out

    def aggregates(self):
        return [
            Aggregate("mse_mean", "pair_mse", "mean", higher_is_better=None,
                      description="mean over cases of the g+/g- pixel MSE (0-255 scale)"),
            Aggregate("mse_std", "pair_mse", "std", higher_is_better=None,
                      description="population std (ddof=0) over cases of the g+/g- pixel MSE"),
        ]
