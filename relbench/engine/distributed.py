"""Process topology for `relbench run` and `relbench train`: one process, or several under
`accelerate launch` / torchrun.

Runs: ranks split the chunks of cases; rank 0 waits for everyone, then aggregates. Training:
each rank takes its slice of the global batch; DDP averages gradients and ``all_sum`` /
``broadcast`` carry the log and the early-stopping decision. accelerate is imported only when
WORLD_SIZE > 1, and torch only then or when a device has to be chosen, so single-process runs
need neither.
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

    def all_sum(self, tensor):
        """Sum ``tensor`` over the ranks in place (a no-op alone); returns it."""
        if self.world_size > 1:
            import torch.distributed as td

            td.all_reduce(tensor)
        return tensor

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]


def topology(device: str | None = None) -> Topology:
    """This process's place. ``device``: None leaves the choice to the generators (runs);
    'auto', 'cpu', 'cuda', 'cuda:3' resolve it here (training needs one device per process).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Topology(device=None if device is None else _single_device(device))
    try:
        import torch
        from accelerate import PartialState
    except ImportError:
        raise UserError("multi-process runs need accelerate and torch: pip install 'relbench[multiproc]'") from None
    # without an accelerator accelerate must be told to use CPU processes (gloo)
    cpu = (os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or device == "cpu"
           or not torch.cuda.is_available())
    state = PartialState(cpu=cpu)
    from accelerate.utils import gather_object

    return Topology(state.process_index, state.num_processes, str(state.device), state.wait_for_everyone,
                    lambda obj: gather_object([obj]))


def _single_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device: {device} requested but CUDA is not available (use --device cpu)")
    return device
