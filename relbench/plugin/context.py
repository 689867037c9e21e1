"""What the harness hands every plugin besides its own arguments: the vocabulary and where the
process runs. A dataclass, so a plugin can build one in its tests (relbench.testing.tiny_context)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relbench.spec.predicates import Vocabulary


@dataclass
class Context:
    """What the harness hands a plugin besides its own arguments."""

    vocab: Vocabulary
    rank: int = 0
    world_size: int = 1
    device: str | None = None  # the process's accelerator under accelerate/torchrun, else None
    progress: bool = False  # progress bars wanted (model loading bars follow --no-progress)
    extra: dict[str, Any] = field(default_factory=dict)
