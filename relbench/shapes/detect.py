"""The exact detector of the shapes world: colour segmentation, no weights.

Every object in a shapes image has its own flat colour, so the box of "red circle" is the
extent of the red pixels; the shape is classified from the fill ratio of its largest
connected component (square 1.0, circle pi/4, triangle 1/2) and reported as a label.
Matching a name needs the colour only: an occluded object can lose enough pixels to change
its fill ratio, and colour alone already identifies it in this world.
"""

from __future__ import annotations

import numpy as np

from relbench.spec.data import Box
from relbench.shapes.world import COLOURS, SHAPE_KINDS

MIN_PIXELS = 6
_FILL = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}


def _packed(image: np.ndarray) -> np.ndarray:
    """One int32 per pixel (r<<16 | g<<8 | b): one comparison per pixel instead of three."""
    img = np.ascontiguousarray(image[..., :3], dtype=np.uint8).astype(np.int32)
    return (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]


def colour_box(image: np.ndarray, colour: str, packed: np.ndarray | None = None) -> tuple[Box, np.ndarray] | None:
    r, g, b = COLOURS[colour]
    mask = (_packed(image) if packed is None else packed) == ((r << 16) | (g << 8) | b)
    if mask.sum() < MIN_PIXELS:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return box, mask


def classify_shape(mask: np.ndarray) -> str:
    """Shape of the largest connected component, by fill ratio of its bounding box."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    area = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    fill = mask.sum() / area
    return min(_FILL, key=lambda k: abs(_FILL[k] - fill))


def detect_objects(image: np.ndarray, names: list[str]) -> dict[str, tuple[Box, float] | None]:
    """Box (pixels, x_max/y_max exclusive) and score 1.0 for each named object, None if absent."""
    out: dict[str, tuple[Box, float] | None] = {}
    packed = _packed(image)
    for name in names:
        parts = name.strip().lower().split()
        colour = parts[0] if parts and parts[0] in COLOURS else None
        if colour is None or len(parts) != 2 or parts[1] not in SHAPE_KINDS:
            out[name] = None
            continue
        found = colour_box(image, colour, packed)
        out[name] = None if found is None else (found[0], 1.0)
    return out


def detect_all(image: np.ndarray) -> list[tuple[str, Box]]:
    """Every object present, labelled '<colour> <shape>'."""
    found = []
    packed = _packed(image)
    for colour in COLOURS:
        hit = colour_box(image, colour, packed)
        if hit is not None:
            found.append((f"{colour} {classify_shape(hit[1])}", hit[0]))
    return found


def snap_to_palette(image: np.ndarray) -> np.ndarray:
    """Each pixel set to its nearest world colour (or the background) when unambiguous.

    Generated images (a trained model, not the renderer) never hit a palette colour exactly.
    A pixel takes the nearest of COLOURS + BACKGROUND (RGB distance) if that is closer than
    the two closest palette entries are to each other (67 for yellow/orange), else the
    background: off-palette smudges count as no object. A blend of an object colour with the
    background snaps to whichever is nearer, so edges neither grow nor shrink a box by more
    than a blend's width. A stricter radius (half that gap) rejected most pixels of a model
    that draws recognisable but slightly shifted colours; colour shifts between neighbouring
    palette entries are still errors (yellow drawn orange is not yellow).
    """
    from relbench.shapes.world import BACKGROUND

    palette = np.array([*COLOURS.values(), BACKGROUND], dtype=np.float32)
    gaps = np.linalg.norm(palette[:, None] - palette[None], axis=-1)
    radius = gaps[gaps > 0].min()
    px = np.asarray(image[..., :3], dtype=np.float32)
    dist = np.linalg.norm(px[..., None, :] - palette, axis=-1)
    nearest = dist.argmin(-1)
    nearest[dist.min(-1) >= radius] = len(palette) - 1
    return palette.astype(np.uint8)[nearest]


def detect_objects_snapped(image: np.ndarray, names: list[str]) -> dict[str, tuple[Box, float] | None]:
    """detect_objects on the palette-snapped image, each box the extent of the colour's largest
    connected component (a few stray pixels of a colour elsewhere must not stretch its box)."""
    from scipy import ndimage

    snapped = snap_to_palette(image)
    out = detect_objects(snapped, names)
    packed = _packed(snapped)
    for name, hit in out.items():
        if hit is None:
            continue
        found = colour_box(snapped, name.strip().lower().split()[0], packed)
        labels, n = ndimage.label(found[1])
        if n > 1:
            sizes = ndimage.sum(found[1], labels, index=range(1, n + 1))
            keep = labels == (int(np.argmax(sizes)) + 1)
            if keep.sum() < MIN_PIXELS:
                out[name] = None
                continue
            rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
            out[name] = ((float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)), 1.0)
    return out
