"""The noise of a training step: eps ~ N(0, I) for every data point and noise row, z = x + sigma * eps.

Drawn feature-major, a (d, M, N) tensor viewed as (M, N, d), so step.step_terms forms z without copies.
With antithetic pairs the M rows are M / 2 draws, each followed by its negative (rows 2k and 2k + 1 are
eps and -eps): every odd-order term of the noise cancels within a pair, the leading <s(x), eps> / sigma
of DSM's fitting term among them, while each pair keeps the mean of the two points.
"""

from __future__ import annotations

import torch
from torch import Tensor


def draw_noise(x: Tensor, samples: int, antithetic: bool, gen: torch.Generator) -> Tensor:
    """The step's noise (M, N, d) for data x (N, d): M = samples rows, in pairs when antithetic."""
    n, dim = x.shape[0], x.shape[1]
    if not antithetic:
        return torch.randn((dim, samples, n), generator=gen, device=x.device, dtype=x.dtype).permute(1, 2, 0)
    half = torch.randn((dim, samples // 2, 1, n), generator=gen, device=x.device, dtype=x.dtype)
    return torch.cat([half, -half], 2).reshape(dim, samples, n).permute(1, 2, 0)
