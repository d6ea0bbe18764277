"""The Gaussian diffusion DiffCast runs on residuals: noise schedules, q(r_t | r_0), the noise-prediction loss
and the DDIM / DDPM sampler, as plain functions of tensors (written from Ho et al. 2020, Song et al. 2021 and
Nichol & Dhariwal 2021; the symbols follow DDPM: beta_t, alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s)."""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from stbench import UserError

SCHEDULES = ("linear", "cosine")


def beta_schedule(kind: str, timesteps: int) -> torch.Tensor:
    """``beta_1 .. beta_T`` (float64) of the named schedule.

    ``linear``: DDPM's betas from 1e-4 to 0.02 for T = 1000, scaled by 1000 / T for other T (as Nichol &
    Dhariwal do) so the end points keep their meaning. ``cosine``: Nichol & Dhariwal's
    ``abar(t) = f(t) / f(0)``, ``f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2`` with s = 0.008 and betas clipped
    at 0.999.
    """
    if timesteps < 1:
        raise UserError(f"diffcast: timesteps must be at least 1, got {timesteps}")
    if kind == "linear":
        if timesteps <= 20:  # 0.02 * 1000 / T reaches 1 (a level that erases everything)
            raise UserError(f"diffcast: the linear schedule needs timesteps > 20, got {timesteps}")
        scale = 1000.0 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise UserError(f"diffcast: beta_schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")


def cumulative_alphas(betas: torch.Tensor) -> torch.Tensor:
    """``abar_t = prod_{s <= t} (1 - beta_s)`` for t = 1..T (index 0 holds abar_1)."""
    return torch.cumprod(1 - betas, dim=0)


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped to broadcast against ``like`` ([N, ...]) for a level index per sample."""
    return values.to(like.dtype)[t].reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(r0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """A draw of q(r_t | r_0) = N(sqrt(abar_t) r_0, (1 - abar_t) I): ``sqrt(abar_t) r_0 + sqrt(1 - abar_t) noise``.

    ``t`` holds one 0-based level index per sample (index k is the paper's t = k + 1).
    """
    a = _per_sample(abar, t, r0)
    return a.sqrt() * r0 + (1 - a).sqrt() * noise


def noise_prediction_loss(eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], r0: torch.Tensor,
                          t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """DDPM's simple objective ``E || noise - eps(r_t, t) ||^2`` (mean over every element) at the given levels."""
    return F.mse_loss(eps_model(q_sample(r0, t, noise, abar), t), noise)


def sampling_levels(timesteps: int, steps: int) -> List[int]:
    """The 0-based levels a sampler visits, noisiest first: ``steps`` levels evenly spread over ``0 .. T-1``
    (T-1 and 0 always among them); ``steps == timesteps`` visits every level (the DDPM chain)."""
    if not 1 <= steps <= timesteps:
        raise UserError(f"diffcast: sampling_steps must be between 1 and timesteps ({timesteps}), got {steps}")
    if steps == 1:
        return [timesteps - 1]
    levels = [round((timesteps - 1) * (steps - 1 - i) / (steps - 1)) for i in range(steps)]
    return sorted(set(levels), reverse=True)


def ddim_step(r_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, eta: float,
              noise: Optional[torch.Tensor] = None,
              clip: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """One update of Song et al.'s generalised sampler (their eq. 12) from level t to the previous visited level.

    ``r0 = (r_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` (optionally clipped, eps then re-derived from it),
    ``sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))``,
    ``r_prev = sqrt(abar_prev) r0 + sqrt(1 - abar_prev - sigma^2) eps + sigma * noise``.
    eta = 0 is DDIM (deterministic given r_T); eta = 1 with every level visited is DDPM's ancestral step with
    the posterior variance beta~_t. ``abar_prev`` = 1 for the last step (the clean residual).
    """
    r0 = (r_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    if clip is not None:
        r0 = clip(r0)
        eps = (r_t - math.sqrt(abar_t) * r0) / math.sqrt(1 - abar_t)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))
    out = math.sqrt(abar_prev) * r0 + math.sqrt(max(1 - abar_prev - sigma ** 2, 0.0)) * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step: eta > 0 needs noise")
        out = out + sigma * noise
    return out


def level_pairs(levels: Sequence[int]) -> List[Tuple[int, int]]:
    """(level, previous visited level) pairs of a sampling run; -1 stands for the clean residual."""
    return list(zip(levels, list(levels[1:]) + [-1]))


def sample(eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: Sequence[int],
           abar: Sequence[float], levels: Sequence[int], eta: float, device=None, dtype=torch.float32,
           clip: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Draw r_0 by the reverse process: r_T ~ N(0, I), then :func:`ddim_step` over ``levels``.

    Every random number comes from torch's global generator, in this order: r_T, then (eta > 0) the noise of
    each step. ``abar`` is a sequence of Python floats (so the loop runs on the meta device too).
    """
    r = torch.randn(tuple(shape), device=device, dtype=dtype)
    for level, previous in level_pairs(levels):
        t = torch.full((shape[0],), level, device=device, dtype=torch.long)
        eps = eps_model(r, t)
        abar_prev = 1.0 if previous < 0 else float(abar[previous])
        noise = torch.randn_like(r) if eta > 0 and previous >= 0 else None
        r = ddim_step(r, eps, float(abar[level]), abar_prev, eta, noise, clip)
    return r
