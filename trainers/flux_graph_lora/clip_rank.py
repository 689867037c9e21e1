"""The optional CLIP ranking term, differentiable in the image.

The one-step estimate of z0 under g+ is decoded by the VAE and scored by a frozen open_clip
model against the relation texts of g+ and g-:
    L_clip = mean max(0, margin - (S(img, p+) - S(img, p-))),  S = logit_scale * cosine.
CLIP is close to a bag of words on relations (ARO VG-Relation ~0.59, docs/metrics.md), so this
term is a weak teacher on swaps; it is off unless ``objective.clip`` is set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipRanker:
    def __init__(self, spec, device: str):
        from relbench.models import clip as _clip_model

        self.model, _, self.tokenizer = _clip_model.load(spec.model, spec.checkpoint, device, pretrained=spec.pretrained,
                                                         quick_gelu=spec.quick_gelu)
        self.model.requires_grad_(False)
        self.device = device
        size = self.model.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        self.mean = torch.tensor(cfg.get("mean", OPENAI_MEAN), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", OPENAI_STD), device=device).view(1, 3, 1, 1)
        self._text: dict[str, torch.Tensor] = {}

    def text(self, prompts: list[str]) -> torch.Tensor:
        todo = [p for p in dict.fromkeys(prompts) if p not in self._text]
        if todo:
            with torch.no_grad():
                f = self.model.encode_text(self.tokenizer(todo).to(self.device)).float()
            self._text.update(zip(todo, F.normalize(f, dim=-1)))
        return torch.stack([self._text[p] for p in prompts])

    def scores(self, images: torch.Tensor, pos: list[str], neg: list[str]) -> torch.Tensor:
        """S(img, p+) - S(img, p-) per image; ``images`` (B, 3, H, W) in [-1, 1]."""
        x = ((images.float() + 1) / 2).clamp(0, 1)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        f = F.normalize(self.model.encode_image((x - self.mean) / self.std).float(), dim=-1)
        scale = self.model.logit_scale.exp().float()
        return scale * ((f * self.text(pos)).sum(-1) - (f * self.text(neg)).sum(-1))

    def loss(self, images, pos, neg, margin: float, has_neg: torch.Tensor):
        s = self.scores(images, pos, neg)
        w = has_neg.to(s.dtype)
        n = w.sum().clamp(min=1.0)
        return (torch.relu(margin - s) * w).sum() / n, ((s > 0).to(s.dtype) * w).sum() / n
