"""A test-only generator that writes the request's sampling seed into its image, so a test can
read back which noise every image was drawn with."""

import numpy as np

from relbench.plugin.generator import Generator
from relbench.plugin.registry import register_generator


@register_generator("seed_echo")
class SeedEcho(Generator):
    """Test only: pixel (0, 0) and (0, 1) hold the request seed's four bytes (big-endian)."""

    def generate(self, requests):
        out = []
        for r in requests:
            w, h = r.size
            img = np.zeros((h, w, 3), np.uint8)
            b = int(r.seed).to_bytes(4, "big")
            img[0, 0, :2], img[0, 1, :2] = list(b[:2]), list(b[2:])
            out.append(img)
        return out


def read_seed(img) -> int:
    return int.from_bytes(bytes([img[0, 0, 0], img[0, 0, 1], img[0, 1, 0], img[0, 1, 1]]), "big")
