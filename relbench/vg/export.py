"""Writing square reference images (see relbench/vg/boxes.py for the crop/pad policy)."""

from __future__ import annotations

import io

from relbench.io.atomic import write_bytes
from relbench.errors import UserError
from relbench.vg.boxes import fit_square

JPEG_QUALITY = 95


def export_square(src: str, dst: str, annotated_size: tuple[int, int], size: int, fit: str) -> bool:
    """Write ``src`` as a size x size RGB JPEG at ``dst`` (atomically).

    Boxes are annotated in image_data.json's (width, height); if the file on disk has another
    size it is first resized to that, so the boxes still fit. Returns whether that happened.
    """
    from PIL import Image

    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
    except OSError as exc:
        raise UserError(f"{src}: cannot read image ({exc})") from None
    mismatch = im.size != tuple(annotated_size)
    if mismatch:
        im = im.resize(annotated_size, Image.Resampling.BICUBIC)
    f = fit_square(annotated_size, size, fit)
    im = im.resize(f.resized, Image.Resampling.BICUBIC)
    ox, oy = f.offset
    if fit == "crop":
        im = im.crop((ox, oy, ox + size, oy + size))
    else:
        canvas = Image.new("RGB", (size, size), (0, 0, 0))
        canvas.paste(im, (-ox, -oy))
        im = canvas
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY)
    write_bytes(dst, buf.getvalue())
    return mismatch

