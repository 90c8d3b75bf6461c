"""Samplers: from a score to samples (seed 001: Langevin dynamics; seed 003: annealed Langevin over a
noise schedule; seed 004 and Song et al. 2021: the variance-exploding reverse SDE and its
probability-flow ODE). Every sampler takes a score function score(z (n, d), sigma (n,)) -> (n, d), so it
runs alike on a trained network and on the exact score of q_sigma (the reference score of the run's
dataset): the difference between the two is the score's error, the rest is the sampler's own.

Conventions (other codes scale differently):
- langevin: x <- x + (alpha / 2) s(x, sigma) + sqrt(alpha) z, alpha = step_size, at one sigma (seed 001,
  Eq. 1 of Song & Ermon 2019);
- annealed_langevin: the same at each level sigma_i from the largest down, steps_per_level steps with
  alpha_i = eps * sigma_i^2 / sigma_L^2, sigma_L the smallest level (Song & Ermon 2019, Algorithm 1);
- reverse_sde: Euler-Maruyama on the VE reverse SDE over `steps` geometric sigmas from sigma_max to
  sigma_min, x <- x + (sigma_i^2 - sigma_{i+1}^2) s(x, sigma_i) + sqrt(sigma_i^2 - sigma_{i+1}^2) z
  (Song et al. 2021, the reverse-diffusion predictor), then optionally Tweedie's denoising step
  x + sigma_min^2 s(x, sigma_min);
- pf_ode: dx/dsigma = -sigma s(x, sigma) from sigma_max to sigma_min (the VE probability-flow ODE with
  sigma(t)^2 = t), as dx/dlog(sigma) = -sigma^2 s, solved by torchdiffeq.odeint in float64 (the score
  too: score() gets float64 points);
- pc: reverse_sde's predictor with `corrector_steps` Langevin corrector steps per level, the corrector's
  step 2 (snr |z| / |s|)^2 (Song et al. 2021, Algorithm 4, with |.| the norms over the batch).

SAMPLERS maps each name to its function; a new sampler is one entry (and its conf/sampler/ YAML).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.core.schedules import Schedule

Score = Callable[[Tensor, Tensor], Tensor]  # score(z (n, d), sigma (n,)) -> (n, d), in z's dtype
Progress = Callable[[int], None]  # called with the number of score evaluations just done


@dataclass(frozen=True)
class Sampler:
    """One sampler: its function (score, x0, settings, generator, progress) -> samples, whether it walks a
    noise schedule, and how many score evaluations it makes (for the progress bar)."""

    fn: Callable[..., Tensor]
    annealed: bool
    evaluations: Callable[[dict], int]


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> list[float]:
    """levels sigmas from sigma_max down to sigma_min, geometric: a geometric Schedule's levels, largest
    first, so an annealed sampler walks exactly the sigmas a noise-conditional network was trained at."""
    return Schedule("geometric", levels, sigma_min, sigma_max).level_sigmas().flip(0).tolist()


def _full(x: Tensor, sigma: float) -> Tensor:
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def langevin(score: Score, x: Tensor, s: dict, gen: torch.Generator, progress: Progress) -> Tensor:
    alpha, sig = s["step_size"], _full(x, s["sigma"])
    for _ in range(s["steps"]):
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        x = x + 0.5 * alpha * score(x, sig) + math.sqrt(alpha) * noise
        progress(1)
    return x


def annealed_langevin(score: Score, x: Tensor, s: dict, gen: torch.Generator, progress: Progress) -> Tensor:
    sigmas = s["sigmas"]
    for sigma in sigmas:
        alpha, sig = s["eps"] * sigma**2 / sigmas[-1] ** 2, _full(x, sigma)
        for _ in range(s["steps_per_level"]):
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            x = x + 0.5 * alpha * score(x, sig) + math.sqrt(alpha) * noise
            progress(1)
    return x


def _predict(score: Score, x: Tensor, sigma: float, nxt: float, gen: torch.Generator) -> Tensor:
    """One reverse-diffusion (Euler-Maruyama) step of the VE reverse SDE from sigma to nxt."""
    var = sigma**2 - nxt**2
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
    return x + var * score(x, _full(x, sigma)) + math.sqrt(var) * noise


def _denoise(score: Score, x: Tensor, s: dict, progress: Progress) -> Tensor:
    if not s["denoise"]:
        return x
    progress(1)
    return x + s["sigmas"][-1] ** 2 * score(x, _full(x, s["sigmas"][-1]))  # Tweedie: E[x0 | x]


def reverse_sde(score: Score, x: Tensor, s: dict, gen: torch.Generator, progress: Progress) -> Tensor:
    sigmas = s["sigmas"]
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:]):
        x = _predict(score, x, sigma, nxt, gen)
        progress(1)
    return _denoise(score, x, s, progress)


def pc(score: Score, x: Tensor, s: dict, gen: torch.Generator, progress: Progress) -> Tensor:
    sigmas = s["sigmas"]
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:]):
        x = _predict(score, x, sigma, nxt, gen)
        sig = _full(x, nxt)
        for _ in range(s["corrector_steps"]):
            grad = score(x, sig)
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            alpha = 2 * (s["snr"] * noise.norm() / grad.norm().clamp_min(1e-30)) ** 2
            x = x + alpha * grad + torch.sqrt(2 * alpha) * noise
        progress(1 + s["corrector_steps"])
    return _denoise(score, x, s, progress)


def pf_ode(score: Score, x: Tensor, s: dict, gen: torch.Generator, progress: Progress) -> Tensor:
    from torchdiffeq import odeint  # loaded by the one sampler that needs it

    dtype = x.dtype

    def drift(log_sigma: Tensor, z: Tensor) -> Tensor:  # state, time and score in float64: adaptive
        progress(1)  # step size control cannot get below float32's rounding of the score
        sigma = log_sigma.exp()
        return -sigma * sigma * score(z, sigma.expand(z.shape[0]))

    # in log sigma: dopri5 steps past the end and interpolates back, and sigma must stay > 0 there
    span = torch.tensor([s["sigmas"][0], s["sigmas"][-1]], dtype=torch.float64, device=x.device).log()
    out = odeint(drift, x.double(), span, method=s["method"], rtol=s["rtol"], atol=s["atol"],
                 options=ode_options(s["method"], span))[-1]
    return _denoise(score, out.to(dtype), s, progress)


FIXED_GRID = ("euler", "midpoint", "rk4")
ODE_METHODS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", *FIXED_GRID)  # torchdiffeq's, for pf_ode


def ode_options(method: str, span: Tensor) -> dict:
    """torchdiffeq options: a first step of 1/50 of the span (its own guess starts from |f| and, where the
    drift is small at the start, tries a step that overflows exp(log sigma)), 1/100 for a fixed grid."""
    length = float((span[1] - span[0]).abs())
    return {"step_size": length / 100} if method in FIXED_GRID else {"first_step": length / 50}


SAMPLERS: dict[str, Sampler] = {
    "langevin": Sampler(langevin, False, lambda s: s["steps"]),
    "annealed_langevin": Sampler(annealed_langevin, True, lambda s: len(s["sigmas"]) * s["steps_per_level"]),
    "reverse_sde": Sampler(reverse_sde, True, lambda s: len(s["sigmas"]) - 1 + s["denoise"]),
    "pc": Sampler(pc, True, lambda s: (len(s["sigmas"]) - 1) * (1 + s["corrector_steps"]) + s["denoise"]),
    "pf_ode": Sampler(pf_ode, True, lambda s: 0),  # adaptive: the count is known only afterwards
}


def initial_points(init: str, n: int, dim: int, box: tuple[float, float], sigma_max: float,
                   gen: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """x0 (n, dim): uniform in box^dim, or N(0, sigma_max^2 I)."""
    if init == "uniform":
        lo, hi = box
        return lo + (hi - lo) * torch.rand((n, dim), generator=gen, dtype=dtype)
    return sigma_max * torch.randn((n, dim), generator=gen, dtype=dtype)
