"""Text-only FLUX.1-schnell baseline through diffusers' FluxPipeline (offline, lazily loaded)."""

from __future__ import annotations

from relbench.models.flux import FluxArgs, FluxBase
from relbench.plugin.registry import register_generator


@register_generator("flux")
class FluxGenerator(FluxBase):
    """FLUX.1-schnell from a local directory or the HF cache; draws from the prompt only.

    Defaults follow the origin experiment: 4 steps, guidance 0, bf16 on GPU (float32 on CPU).
    The graph is ignored, so g+ and g- under a neutral prompt are drawn once.
    """

    Args = FluxArgs
    uses = frozenset({"prompt"})
    version = "1"
