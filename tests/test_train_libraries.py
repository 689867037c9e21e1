"""Where the trainer uses diffusers' and accelerate's helpers and where it keeps its own, each
pinned by what decides it: the same draws as diffusers' SD3 sampler, a warmup whose first step
trains, and DDP through accelerate whose precision is the config's, not the launch's."""

from __future__ import annotations

import json
import math
import os
import subprocess
from types import SimpleNamespace

import pytest
import torch

from conftest import ACCELERATE_LAUNCH, ROOT
from relbench.trainers.flux_graph_lora.config import OptimSpec, TimestepSpec
from test_trainer import config, data, trainable  # noqa: F401 - the tiny FLUX fixture


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
    from relbench.trainers.flux_graph_lora import Trainer

    fake = SimpleNamespace(cfg=SimpleNamespace(optim=OptimSpec(warmup_steps=warmup, schedule=schedule)),
                           total_steps=total)
    return [Trainer._lr_factor(fake, s) for s in range(total)]


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


@pytest.mark.slow
@pytest.mark.multiprocess
def test_a_launch_flag_for_bf16_does_not_change_ddp_training(data, tmp_path):  # noqa: F811
    """accelerate's prepare wraps the model in DDP; launched with --mixed_precision bf16 it would
    also wrap forward in bf16 autocast. The config says mixed_precision (auto: no on CPU), so
    2 processes under that flag still end where 1 process ends."""
    from relbench.trainers.flux_graph_lora import train

    train(config(data, tmp_path / "one", epochs=2))
    cfg = tmp_path / "t.yaml"
    cfg.write_text(json.dumps(config(data, tmp_path / "two", epochs=2, batch_size=1).model_dump(mode="json")))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "bf16", "--dynamo_backend", "no", "--main_process_port", "29534",
           "-m", "relbench", "train", "--config", str(cfg)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = trainable(tmp_path / "one"), trainable(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-4) for k in a)
