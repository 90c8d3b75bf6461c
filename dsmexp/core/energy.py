"""The normalisation of an energy model (networks.EnergyMLP, p_model proportional to exp(-E)) in 2-D:
log Z on a grid around the held-out points, for the log-likelihood and KL(q_sigma || p_model) that
evaluation.HeldOut logs against the exact density."""

from __future__ import annotations

import math

import torch
from torch import Tensor

GRID = 256  # points per side of the 2-D normalisation grid
MARGIN = 0.25  # the grid reaches this fraction of the held-out points' range beyond them on each side


@torch.no_grad()
def grid_log_partition(energy, lower: Tensor, upper: Tensor, size: int = GRID) -> Tensor:
    """log of the integral of exp(-E) over the box [lower, upper] (2-D) by the midpoint rule on a
    size x size grid (float64 log-sum-exp): the mass outside the box is left out."""
    axes = [lower[i] + (torch.arange(size, dtype=lower.dtype, device=lower.device) + 0.5)
            * (upper[i] - lower[i]) / size for i in range(2)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    values = -energy(points).double()
    cell = math.prod(float(upper[i] - lower[i]) / size for i in range(2))
    return torch.logsumexp(values, 0) + math.log(cell)


def grid_box(points: Tensor, margin: float = MARGIN) -> tuple[Tensor, Tensor]:
    """The box around points (n, 2) widened by `margin` of their range on each side."""
    lo, hi = points.min(0).values, points.max(0).values
    return lo - margin * (hi - lo), hi + margin * (hi - lo)
