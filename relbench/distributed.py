"""Process topology: one process, or several under `accelerate launch` / torchrun.

Ranks split the chunks of cases; rank 0 waits for everyone, then aggregates. accelerate is
imported only when WORLD_SIZE > 1, so single-process runs need neither it nor torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from relbench.errors import UserError


@dataclass
class Topology:
    rank: int = 0
    world_size: int = 1
    device: str | None = None
    barrier: Callable[[], None] = lambda: None
    gather: Callable[[object], list] = lambda obj: [obj]  # every rank's object, on every rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, chunk_index: int) -> bool:
        return chunk_index % self.world_size == self.rank


def topology() -> Topology:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Topology()
    try:
        import torch
        from accelerate import PartialState
    except ImportError:
        raise UserError("multi-process runs need accelerate and torch: pip install 'relbench[multiproc]'") from None
    # without an accelerator accelerate must be told to use CPU processes (gloo)
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    from accelerate.utils import gather_object

    return Topology(state.process_index, state.num_processes, str(state.device), state.wait_for_everyone,
                    lambda obj: gather_object([obj]))
