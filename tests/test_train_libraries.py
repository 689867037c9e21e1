"""Where the trainer uses diffusers' training helpers and where it keeps its own, each pinned
by what decides it: the same draws as diffusers' SD3 sampler, and a warmup whose first step trains."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from relbench.trainers.flux_graph_lora.config import OptimSpec, TimestepSpec


def test_logit_normal_t_is_diffusers_sd3_draw_and_takes_one_draw():
    """t is what diffusers' compute_density_for_timestep_sampling draws from the same generator,
    bit for bit (float32 sigmoid), and the generator then gives the next sample's draws unchanged."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    from relbench.trainers.flow import sample_t

    spec = TimestepSpec(kind="logit_normal", mean=0.5, std=1.3)
    for seed in range(64):
        g = torch.Generator().manual_seed(seed)
        t, after = sample_t(g, spec), torch.rand((), generator=g)
        ref = torch.Generator().manual_seed(seed)
        u = compute_density_for_timestep_sampling("logit_normal", 1, 0.5, 1.3, generator=ref)
        assert t == float(u[0]) and 0.0 < t < 1.0
        assert torch.equal(after, torch.rand((), generator=ref))


def _factors(warmup: int, schedule: str, total: int) -> list[float]:
    from relbench.trainers.flux_graph_lora._setup import Setup

    fake = SimpleNamespace(cfg=SimpleNamespace(optim=OptimSpec(warmup_steps=warmup, schedule=schedule)),
                           total_steps=total)
    return [Setup._lr_factor(fake, s) for s in range(total)]


def test_warmup_trains_from_the_first_step_unlike_diffusers_get_scheduler():
    """The reason the schedule is not diffusers' get_scheduler: its warmup gives lr 0 at step 0."""
    from diffusers.optimization import get_scheduler

    assert _factors(4, "constant", 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_scheduler("constant_with_warmup", opt, num_warmup_steps=4)
    assert theirs.get_last_lr() == [0.0]  # their first step would train nothing
    # cosine after the warmup: 1 at its start, 1/2 halfway through the remaining 6 steps
    cos = _factors(4, "cosine", 10)
    assert cos[4] == 1.0 and cos[7] == pytest.approx(0.5) and cos[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 6)))
