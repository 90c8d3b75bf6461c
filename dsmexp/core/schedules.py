"""Noise schedules and weightings for a noise-conditional score model s(z, sigma) trained across many
noise scales at once (seed 003, Multi-Scale Denoising Score Matching; Song & Ermon 2019, NCSN):

    L(theta) = E_sigma [ lambda(sigma) E_{x, eps} l(s(x + sigma eps, sigma)) ]

with l the per-point objective of ISM (Eq. 8), DSM (Eq. 7) or DSM-S (Eq. 9) at that sigma.

- geometric: L levels sigma_i = sigma_min (sigma_max / sigma_min)^(i / (L - 1)), i = 0..L-1 (NCSN);
- continuous: log sigma uniform in [log sigma_min, log sigma_max]; for the per-level table the range is
  cut into L bins of equal log width, each reported at its geometric centre.

Level 0 is always the smallest sigma. sampling=random gives each point of the batch one level (NCSN's
training, and the log-uniform draw of continuous training); sampling=all takes every point at every
level each step (L times the points). A new schedule kind or weighting is one entry below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

SCHEDULES = ("geometric", "continuous")
SAMPLINGS = ("random", "all")


@dataclass(frozen=True)
class Weighting:
    """lambda(sigma) for a tensor of sigmas (and the data scale sigma_data), and where it comes from."""

    fn: Callable[[Tensor, float], Tensor]
    source: str


WEIGHTINGS: dict[str, Weighting] = {
    # sigma^2 |s + eps/sigma|^2 = |sigma s + eps|^2: every level's loss is O(1) (noise prediction, DDPM)
    "sigma2": Weighting(lambda s, _: s * s, "Song & Ermon 2019 (NCSN), lambda = sigma^2"),
    "none": Weighting(lambda s, _: torch.ones_like(s), "uniform, lambda = 1 (seed 003: low-noise levels "
                      "dominate)"),
    # EDM weights the denoiser loss |D - x|^2 = sigma^4 |s + eps/sigma|^2 by (sigma^2 + sigma_data^2) /
    # (sigma sigma_data)^2, which is lambda = sigma^2 (sigma^2 + sigma_data^2) / sigma_data^2 on the score
    "edm": Weighting(lambda s, sd: s * s * (s * s + sd * sd) / (sd * sd),
                     "Karras et al. 2022 (EDM), Table 1: lambda = (sigma^2 + sigma_data^2) / "
                     "(sigma sigma_data)^2 on the denoiser loss"),
}


@dataclass(frozen=True)
class Schedule:
    """The noise scales of a multi-scale run (conf: schedule.*)."""

    kind: str
    levels: int
    sigma_min: float
    sigma_max: float
    sampling: str = "random"

    @classmethod
    def from_config(cls, cfg) -> Schedule:
        return cls(cfg.kind, int(cfg.levels), float(cfg.sigma_min), float(cfg.sigma_max), cfg.sampling)

    def level_sigmas(self) -> Tensor:
        """(L,) float64, increasing: the levels (geometric) or the bins' geometric centres (continuous)."""
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        if self.kind == "geometric":
            return torch.exp(torch.linspace(lo, hi, self.levels, dtype=torch.float64))
        centres = (torch.arange(self.levels, dtype=torch.float64) + 0.5) / self.levels
        return torch.exp(lo + centres * (hi - lo))

    def points_per_draw(self) -> int:
        """How many z each noise draw of a point becomes: L with sampling=all, else 1."""
        return self.levels if self.sampling == "all" else 1

    def draw(self, count: int, generator: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor]:
        """(sigma (P,) float64, level (P,) int64) for `count` noise draws, P = count * points_per_draw().

        sampling=all lays the points out level-major (point p is draw p % count at level p // count);
        sampling=random draws from `generator` (after the run's eps, so eps are what they were)."""
        table = self.level_sigmas().to(device)
        if self.sampling == "all":
            level = torch.arange(self.levels, device=device).repeat_interleave(count)
            return table[level], level
        if self.kind == "geometric":
            level = torch.randint(self.levels, (count,), generator=generator, device=device)
            return table[level], level
        u = torch.rand(count, generator=generator, device=device, dtype=torch.float64)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        level = (u * self.levels).long().clamp_(max=self.levels - 1)
        return torch.exp(lo + u * (hi - lo)), level


def weights(name: str, sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) of the weighting `name` for each point's sigma."""
    return WEIGHTINGS[name].fn(sigma, sigma_data)
