"""Box geometry for square reference images: how a (w, h) photo becomes size x size.

Two fits, both keeping the aspect ratio:
- "crop" (default): resize so the SHORTER side is ``size``, then take the centred
  size x size window (torchvision's Resize + CenterCrop). Boxes are scaled, shifted, and
  clipped to the window; objects near the long edges can be cut.
- "pad": resize so the LONGER side is ``size`` and centre it on a black size x size canvas.
  Nothing is cut; boxes are scaled and shifted only.
Resized dimensions are rounded to whole pixels, so each axis uses its own exact scale
(resized / original) to keep boxes aligned with the pixels actually produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from relbench.spec.data import Box

FITS = ("crop", "pad")


@dataclass(frozen=True)
class Fit:
    """Resize to ``resized`` (w, h), then place so original pixel x maps to x * sx - ox."""

    size: int
    resized: tuple[int, int]
    offset: tuple[int, int]  # (ox, oy): crop window origin in the resized image; negative for pad

    def scale(self, original: tuple[int, int]) -> tuple[float, float]:
        return self.resized[0] / original[0], self.resized[1] / original[1]


def fit_square(original: tuple[int, int], size: int, fit: str = "crop") -> Fit:
    w, h = original
    if fit == "crop":
        s = size / min(w, h)
        rw, rh = max(size, round(w * s)), max(size, round(h * s))
        return Fit(size, (rw, rh), ((rw - size) // 2, (rh - size) // 2))
    if fit == "pad":
        s = size / max(w, h)
        rw, rh = max(1, min(size, round(w * s))), max(1, min(size, round(h * s)))
        return Fit(size, (rw, rh), (-((size - rw) // 2), -((size - rh) // 2)))
    raise ValueError(f"unknown fit {fit!r} (allowed: {', '.join(FITS)})")


def transform_box(box: Box, original: tuple[int, int], fit: Fit) -> tuple[Box, float]:
    """The box in the square image, clipped to it, and the fraction of its area still visible."""
    sx, sy = fit.scale(original)
    ox, oy = fit.offset
    x0, y0, x1, y1 = box[0] * sx - ox, box[1] * sy - oy, box[2] * sx - ox, box[3] * sy - oy
    area = (x1 - x0) * (y1 - y0)
    c = (min(max(x0, 0.0), fit.size), min(max(y0, 0.0), fit.size), min(max(x1, 0.0), fit.size), min(max(y1, 0.0), fit.size))
    visible = (c[2] - c[0]) * (c[3] - c[1]) / area if area > 0 else 0.0
    return c, visible
