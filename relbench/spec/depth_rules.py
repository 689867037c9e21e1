"""Depth rules that judge "A in front of B" / "A behind B" from a nearness map and two regions.

A nearness map is a float array (H, W) indexed [row, column] (row = y, column = x), larger =
nearer (relative inverse depth; relbench.models.depth brings every model to it). Boxes are
(x_min, y_min, x_max, y_max) in pixels as in spatial_rules; a region is a box or a boolean
mask (H, W) of the object's visible pixels.

Two rule sets:

- ``depth`` (relbench): each object's depth is the **median** nearness over its region (a
  box covers the pixels whose centres lie inside it); A is in front of B iff A's median is
  larger, behind iff smaller; equal medians are neither.
- ``t2i_compbench_3d`` (T2I-CompBench++, UniDet_eval/3D_spatial_eval.py, determine_position),
  reproduced with its quirks: the map is min-max normalised per image and quantised to 8 bits
  (their saved PNG), each object's value is the **mean** over ``depth_map[int(x_min):int(x_max),
  int(y_min):int(y_max)]`` -- rows by x, columns by y: the **transposed crop**, i.e. the region
  mirrored across the image diagonal (clipped to the map; NaN when empty) -- and the graded
  score needs overlap: 1 when IoU > 0.5 and the depth order is right, IoU/0.5 when 0 < IoU < 0.5
  and right, else 0 (boxes that do not overlap always score 0). "hidden" is their alias of
  behind. The relation holds (boolean form) iff the score is 1.

numpy is imported inside the functions: the spec layer stays light.
"""

from __future__ import annotations

import math
from typing import Optional

from relbench.errors import UserError
from relbench.spec.spatial_rules import area, intersection

DEPTH_RULE_SETS = ("depth", "t2i_compbench_3d")
#: the predicates a depth rule set judges (canonical names)
DEPTH_PREDICATES = ("in front of", "behind")
#: their IoU gate (iou_threshold_3d)
T2I_3D_IOU_THRESHOLD = 0.5


def check_depth_rule_set(rule_set: str) -> str:
    if rule_set not in DEPTH_RULE_SETS:
        raise UserError(f"spatial: unknown depth rule set {rule_set!r} (known: {', '.join(DEPTH_RULE_SETS)})")
    return rule_set


def box_pixels(box, shape: tuple[int, int]) -> tuple[slice, slice]:
    """(rows, columns) of the pixels whose centres lie inside ``box``, clipped to the map; a box
    narrower than a pixel keeps the pixel holding its centre."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = shape

    def span(lo: float, hi: float, n: int) -> slice:
        a, b = math.ceil(lo - 0.5), math.ceil(hi - 0.5)
        if b <= a:
            a = math.floor((lo + hi) / 2)
            b = a + 1
        a, b = min(max(a, 0), n), min(max(b, 0), n)
        return slice(a, b)

    return span(y0, y1, h), span(x0, x1, w)


def region_median(nearness, region) -> float:
    """Median nearness over a box (pixel centres inside it) or a boolean mask; NaN when empty."""
    import numpy as np

    d = np.asarray(nearness, dtype=np.float64)
    if isinstance(region, np.ndarray) and region.dtype == bool:
        if region.shape != d.shape:
            raise UserError(f"depth: mask shape {region.shape} differs from the depth map's {d.shape}")
        values = d[region]
    else:
        rows, cols = box_pixels(region, d.shape)
        values = d[rows, cols].ravel()
    return float(np.median(values)) if values.size else math.nan


def depth_order_holds(predicate: str, near_a: float, near_b: float) -> Optional[bool]:
    """relbench's verdict from two objects' nearness: None when one is unknown (NaN)."""
    if math.isnan(near_a) or math.isnan(near_b):
        return None
    if predicate == "in front of":
        return near_a > near_b
    if predicate == "behind":
        return near_a < near_b
    raise UserError(f"depth: no depth rule for {predicate!r} (judged: {', '.join(DEPTH_PREDICATES)})")


# --- T2I-CompBench++ 3D spatial --------------------------------------------------------------


def t2i_compbench_3d_map(nearness):
    """Their depth map as read back: min-max normalised to [0, 1], saved as an 8-bit PNG (PIL
    truncates 255·d to an integer) and divided by 255. A constant map becomes all zeros (their
    division by zero gives NaN, which PIL writes as 0)."""
    import numpy as np

    d = np.asarray(nearness, dtype=np.float32)
    lo, hi = float(d.min()), float(d.max())
    norm = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    return (np.clip(np.floor(255.0 * norm), 0, 255) / 255.0).astype(np.float32)


def t2i_compbench_3d_mean(depth_map, box) -> float:
    """Their object value: the mean of ``depth_map[int(x_min):int(x_max), int(y_min):int(y_max)]``
    (transposed crop; NaN when the crop is empty, as torch's mean of nothing)."""
    import numpy as np

    x0, y0, x1, y1 = (int(float(v)) for v in box)
    crop = np.asarray(depth_map)[x0:x1, y0:y1]
    return float(crop.astype(np.float64).mean()) if crop.size else math.nan


def t2i_compbench_3d_position_score(predicate: str, a, b, mean_a: float, mean_b: float) -> float:
    """Their graded position score for "A predicate B" (box1 = A): see the module docstring.
    NaN means never in the right order (their comparisons with NaN are False)."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    iou = inter / union if union > 0 else 0.0  # their code divides by zero here
    diff = mean_a - mean_b
    if predicate == "in front of":
        right = diff > 0
    elif predicate in ("behind", "hidden"):
        right = diff < 0
    else:
        raise UserError(f"depth: no depth rule for {predicate!r} (judged: {', '.join(DEPTH_PREDICATES)})")
    if iou > T2I_3D_IOU_THRESHOLD:
        return 1.0 if right else 0.0
    if 0 < iou < T2I_3D_IOU_THRESHOLD:
        return iou / T2I_3D_IOU_THRESHOLD if right else 0.0
    return 0.0


def t2i_compbench_3d_image_score(position: float, conf_a: Optional[float], conf_b: Optional[float]) -> float:
    """Their per-image score: 0.25·conf1 + 0.25·conf2 + 0.5·position with both objects found,
    0.25·conf of the one found, else 0. Unlike their 2D script, no cut below 0.5."""
    if conf_a is not None and conf_b is not None:
        return 0.25 * conf_a + 0.25 * conf_b + 0.5 * position
    return 0.25 * (conf_a if conf_a is not None else conf_b if conf_b is not None else 0.0)


def depth_relation_holds(rule_set: str, predicate: str, nearness, subject_region, object_region) -> Optional[bool]:
    """Does "subject predicate object" hold on this nearness map under a depth rule set?

    Regions are boxes (or, for ``depth``, boolean masks; T2I-CompBench++ crops boxes only).
    None when a region has no pixels on the map."""
    check_depth_rule_set(rule_set)
    if rule_set == "depth":
        return depth_order_holds(predicate, region_median(nearness, subject_region),
                                 region_median(nearness, object_region))
    theirs = t2i_compbench_3d_map(nearness)
    score = t2i_compbench_3d_position_score(predicate, subject_region, object_region,
                                            t2i_compbench_3d_mean(theirs, subject_region),
                                            t2i_compbench_3d_mean(theirs, object_region))
    return score == 1.0
