"""Small embedded thumbnails (base64 JPEG) of run images, with detected boxes drawn.

A report stays one bounded file: each thumbnail is about 2-4 kB at 112 px, and only the
gallery's selection (the worst cases per predicate and run) is embedded.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00"]  # subject, object, ...


def image_path(run_dir: Path, key: str) -> Path | None:
    """Where a samples.csv image key lives: the run's content store, or a ``file:`` path."""
    if not key:
        return None
    if key.startswith("file:"):
        p = Path(key[5:])
        return p if p.is_absolute() else (run_dir / p if (run_dir / p).exists() else p)
    return run_dir / "images" / key[:2] / f"{key}.png"


def parse_boxes(text) -> dict[str, list[float]]:
    """{name: [x0, y0, x1, y1, score]} from the spatial metric's JSON column; {} if absent/bad."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, list) and len(v) >= 4} if isinstance(data, dict) else {}


def thumbnail(path: Path | None, boxes: dict[str, list[float]] | None = None, names: list[str] | None = None,
              size: int = 112, quality: int = 72) -> str | None:
    """A data URI of the image shrunk to ``size`` px (longest side), boxes drawn in the colour of
    their name's position in ``names``; None when the file is missing or unreadable."""
    from PIL import Image, ImageDraw

    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / max(w, h)
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    except OSError:
        return None
    if boxes:
        draw = ImageDraw.Draw(im)
        order = list(names or []) + [n for n in boxes if n not in (names or [])]
        for name, b in boxes.items():
            c = COLOURS[order.index(name) % len(COLOURS)]
            x0, y0, x1, y1 = (v * scale for v in b[:4])
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=c, width=2)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
