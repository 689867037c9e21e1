"""The objective, as small pure functions (tested against hand computations).

Convention (FLUX / rectified flow, as the seed wrote it): z_t = (1 - t) z0 + t eps, so t = 1 is
pure noise and t = 0 the clean latent; the velocity is dz_t/dt = eps - z0, which the
transformer predicts given t (FluxPipeline passes sigma = t in [0, 1] as the timestep).
The one-step estimate of the clean latent is z0_hat = z_t - t v.

Public because the lab's base pretraining (relbench.lab.base) trains with the same terms.
"""

from __future__ import annotations

import torch


def sample_t(gen: torch.Generator, spec) -> float:
    """One t per sample from its own generator (uniform in [low, high], or logit-normal).

    logit-normal is diffusers' SD3 sampler, one draw from ``gen``; uniform stays here because
    diffusers' draws [0, 1] only, and the seed's range is [low, high]."""
    if spec.kind == "uniform":
        u = float(torch.rand((), generator=gen))
        return spec.low + (spec.high - spec.low) * u
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling("logit_normal", 1, spec.mean, spec.std, generator=gen)
    return float(u[0])


def noisy(z0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t = (1 - t) z0 + t eps, with t broadcast over every dimension but the batch."""
    t = t.view(-1, *([1] * (z0.dim() - 1))).to(z0.dtype)
    return (1 - t) * z0 + t * eps


def flow_errors(pred: torch.Tensor, z0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE of the predicted velocity against the target eps - z0 (float32)."""
    diff = pred.float() - (eps.float() - z0.float())
    return diff.pow(2).flatten(1).mean(1)


def rank_terms(err_pos: torch.Tensor, err_neg: torch.Tensor, has_neg: torch.Tensor, margin: float):
    """(L_rel_rank, rank accuracy) over samples with a negative.

    L_rel_rank = mean max(0, m + err(g+) - err(g-)): the true graph must explain the same noisy
    latent better than the corrupted one by a margin. Accuracy = share with err(g+) < err(g-).
    """
    w = has_neg.to(err_pos.dtype)
    n = w.sum().clamp(min=1.0)
    loss = (torch.relu(margin + err_pos - err_neg) * w).sum() / n
    acc = ((err_pos < err_neg).to(err_pos.dtype) * w).sum() / n
    return loss, acc


def z0_estimate(z_t: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (z_t.dim() - 1))).to(pred.dtype)
    return z_t.to(pred.dtype) - t * pred


# ---------------------------------------------------------------------------- FLUX latents


def normalise_latents(z: torch.Tensor, vae) -> torch.Tensor:
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (z - shift) * vae.config.scaling_factor


def denormalise_latents(z: torch.Tensor, vae) -> torch.Tensor:
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return z / vae.config.scaling_factor + shift


def pack(z: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, 4C), FluxPipeline._pack_latents."""
    from diffusers import FluxPipeline

    b, c, h, w = z.shape
    return FluxPipeline._pack_latents(z, b, c, h, w)


def unpack(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h/2 * w/2, 4C) -> (B, C, h, w) for a latent grid of h x w."""
    b, _, d = x.shape
    x = x.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device, dtype) -> torch.Tensor:
    """Rotary ids (0, row, col) of the packed latent tokens of an h x w latent grid."""
    from diffusers import FluxPipeline

    return FluxPipeline._prepare_latent_image_ids(1, h // 2, w // 2, device, dtype)
