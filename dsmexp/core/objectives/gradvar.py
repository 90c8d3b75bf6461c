"""The variance of a step's parameter gradient, from the groups of points the step already sums
separately (step.step_terms): no extra forward or backward pass.

A step's points are M noise rows of the N data points, z_mn = x_n + sigma eps_mn (point index m N + n).
Groups are runs of whole rows (antithetic runs: whole pairs of rows), so given the data the group means
of the gradient are independent and identically distributed over the noise. With C groups of B_c points,
group mean gradients g_c and the step's gradient g = sum_c B_c g_c / P (P points):

    grad_var = sum_c B_c |g_c - g|^2 / (C - 1),

an unbiased estimate of P Var(g | data) = (1 / N) sum_n tr Cov_eps[grad(x_n, eps)] (for independent
noise; for antithetic pairs the per-point variance that independent points would need to give the same
step noise). It is the training noise of full-batch training, the part of the gradient's variance that
the noise brings: zero at sigma = 0, of order sigma^2 for ISM and 1 / sigma^2 for DSM. Its standard error
is that of the mean of the C terms u_c = B_c |g_c - g|^2 C / (C - 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GradientGroups:
    """Per-group gradient sums of one gradient (a list of parameter tensors) and what they give.

    Groups are filled in turn (add, then close to end the current group), or by number (add with
    group=c: multiscale_terms, whose chunks visit a group's points in more than one place)."""

    def __init__(self) -> None:
        self.totals: dict[int, list] = {}  # group -> [gradient sum (flat, float64), points]
        self.index = 0

    def add(self, grads: list[Tensor], points: int, group: int | None = None) -> None:
        """A chunk's gradient sum (not mean) over `points` points of the current group (or of `group`)."""
        flat = torch.cat([g.reshape(-1) for g in grads]).double()
        key = self.index if group is None else group
        if key in self.totals:
            entry = self.totals[key]
            entry[0], entry[1] = entry[0] + flat, entry[1] + points
        else:
            self.totals[key] = [flat, points]

    def close(self) -> None:
        """End the current group."""
        if self.index in self.totals:
            self.index += 1

    def variance(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(grad_var, its standard error); NaN with fewer than two groups (three for the error)."""
        groups = len(self.totals)
        if groups < 2:
            nan = torch.full((), math.nan, dtype=torch.float64, device=like.device)
            return nan, nan
        sums = torch.stack([entry[0] for entry in self.totals.values()])
        counts = torch.tensor([entry[1] for entry in self.totals.values()], dtype=torch.float64,
                              device=sums.device)
        mean = sums.sum(0) / counts.sum()
        dev = sums / counts[:, None] - mean
        terms = counts * (dev * dev).sum(1) * (groups / (groups - 1))
        value = terms.mean()
        se = terms.std() / math.sqrt(groups) if groups > 2 else torch.full_like(value, math.nan)
        return value, se
