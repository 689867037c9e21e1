"""Content-addressed image store: each image is generated once, found again by its key.

Keys come from ``Request.key`` (generator fingerprint + the request fields it reads), so a
rerun, a resumed run or a second run with the same generator reuses what exists. A key that
starts with ``file:`` names an image outside the store (a reference photo).
"""

from __future__ import annotations

import io
from pathlib import Path

from relbench.io.atomic import write_many


class ImageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        #: the files this store object wrote, so a run refused mid-way can take back its images
        self.written: list[Path] = []

    def path(self, key: str) -> Path:
        if key.startswith("file:"):
            return Path(key[5:])
        return self.root / key[:2] / f"{key}.png"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, image) -> None:
        self.put_many([(key, image)])

    def put_many(self, items) -> None:
        """Store (key, image) pairs; written concurrently (see ``relbench.io.atomic.write_many``)."""
        items = [(self.path(key), _png(image)) for key, image in items]
        write_many(items)
        self.written.extend(path for path, _ in items)

    def get(self, key: str):
        """uint8 RGB array (H, W, 3)."""
        import numpy as np
        from PIL import Image

        with Image.open(self.path(key)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _png(image) -> bytes:
    import numpy as np
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"generators must return uint8 RGB arrays (H, W, 3), got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
