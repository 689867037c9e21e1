"""A test-only generator for any object names: a flat background and two blocks whose colours
and places are hashed from the request, so g+ and g- images differ and nothing needs weights."""

import hashlib

import numpy as np

from relbench.plugin.generator import Generator
from relbench.plugin.registry import register_generator


@register_generator("flat_colour")
class FlatColour(Generator):
    """Test only: flat colours and two blocks hashed from the prompt, graph and seed."""

    def generate(self, requests):
        out = []
        for r in requests:
            w, h = r.size
            digest = hashlib.sha256(f"{r.prompt}|{[t.text() for t in r.graph]}|{r.seed}".encode()).digest()
            img = np.empty((h, w, 3), np.uint8)
            img[:] = list(digest[0:3])
            for j in (3, 9):
                x, y = digest[j] * (w - w // 4) // 255, digest[j + 1] * (h - h // 4) // 255
                img[y : y + h // 4, x : x + w // 4] = list(digest[j + 2 : j + 5])
            out.append(img)
        return out
