"""Caches of frozen computations: VAE latents per photo and FLUX prompt embeddings per prompt.

Both are pure functions of frozen weights and inputs, so caching changes speed, never results
(the latent is the posterior mean, not a sample). ``memory`` keeps CPU tensors; ``disk`` writes
one safetensors file per entry under <output_dir>/cache/, keyed by content and model identity,
so a second run (or a resumed one) skips the encoders; ``off`` recomputes every step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from relbench.trainers.flow import normalise_latents
from relbench.trainers.flux_graph_lora._data import load_image


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class _Cache:
    def __init__(self, mode: str, directory: Path, ident):
        self.mode, self.dir, self.ident = mode, Path(directory), ident
        self.mem: dict[str, dict] = {}
        self.misses = 0

    def get(self, key_parts, compute) -> dict:
        if self.mode == "off":
            self.misses += 1
            return compute()
        key = _key(self.ident, *key_parts)
        hit = self.mem.get(key)
        if hit is not None:
            return hit
        path = self.dir / f"{key}.safetensors"
        if self.mode == "disk" and path.is_file():
            from safetensors.torch import load_file

            hit = load_file(str(path))
        else:
            self.misses += 1
            hit = {k: v.detach().cpu().contiguous() for k, v in compute().items()}
            if self.mode == "disk":
                from safetensors.torch import save as save_bytes

                from relbench.io.atomic import write_bytes

                write_bytes(path, save_bytes(hit))
        if self.mode == "memory":
            self.mem[key] = hit
        return hit


class LatentCache(_Cache):
    def __init__(self, mode, directory, ident, pipe, resolution: int):
        super().__init__(mode, directory, ident)
        self.pipe, self.resolution = pipe, resolution

    def get_latent(self, image_path: str) -> torch.Tensor:
        """(C, h, w) normalised latent (float32) of a photo at the training resolution."""
        p = Path(image_path)
        st = p.stat()

        def compute():
            vae = self.pipe.vae
            img = load_image(image_path, self.resolution)[None].to(vae.device, vae.dtype)
            with torch.no_grad():
                z = vae.encode(img).latent_dist.mode()
            return {"z": normalise_latents(z, vae)[0].float()}

        return self.get(("latent", str(p.resolve()), st.st_size, st.st_mtime_ns, self.resolution), compute)["z"]


class TextCache(_Cache):
    def __init__(self, mode, directory, ident, pipe, max_sequence_length: int):
        super().__init__(mode, directory, ident)
        self.pipe, self.msl = pipe, max_sequence_length

    def get_text(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(T5 embeddings (S, D), pooled CLIP (Dp)) for one prompt, encoded alone."""

        def compute():
            with torch.no_grad():
                e, p, _ = self.pipe.encode_prompt(prompt, prompt_2=None, device=self.pipe._execution_device,
                                                  max_sequence_length=self.msl)
            return {"e": e[0], "p": p[0]}

        hit = self.get(("text", prompt, self.msl), compute)
        return hit["e"], hit["p"]
