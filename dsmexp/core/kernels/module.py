"""The exact divergence of any score network given as a torch nn.Module (model=custom), by torch.func.

div s(z) = sum_i e_i^T J e_i: one Jacobian-vector product per basis vector e_i (torch.func.jvp),
vmapped over groups of basis vectors so that memory stays bounded, and differentiable in the
parameters by autograd (the ISM gradient of Eq. 8). v^T J v for the sliced estimators is one jvp per
projection. Points are feature-major, z (d, n), as for the MLP kernels (base.Kernel).
"""

from __future__ import annotations

import torch
from torch import Tensor, func, nn

from dsmexp.core.kernels.base import Forward, autograd_backward

TANGENT_VALUES = 1 << 22  # floats per vmapped group of basis tangents (group size * n * d)


class ModuleKernel:
    """Any nn.Module mapping (n, d) points to (n, d) scores: exact trace by vmapped jvps over the basis."""

    def __init__(self, model: nn.Module, compile: bool = False) -> None:
        self.model = model

    def prepare(self) -> None:
        """Nothing to precompute: autograd reads the parameters directly."""

    def parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def forward(self, z: Tensor, with_div: bool = True) -> Forward:
        points = z.T
        with torch.enable_grad():
            if not with_div:
                return Forward(self.model(points).T, None)
            n, dim = points.shape
            group = max(1, min(dim, TANGENT_VALUES // max(n * dim, 1)))
            s, div = None, None
            for start in range(0, dim, group):
                idx = torch.arange(start, min(start + group, dim), device=z.device)
                basis = torch.zeros(len(idx), n, dim, dtype=z.dtype, device=z.device)
                basis[torch.arange(len(idx)), :, idx] = 1
                s_rep, jv = func.vmap(lambda t: func.jvp(self.model, (points,), (t,)))(basis)
                part = jv[torch.arange(len(idx)), :, idx].sum(0)  # sum_i (J e_i)_i over this group
                s = s_rep[0] if s is None else s
                div = part if div is None else div + part
        return Forward(s.T, div)

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        return autograd_backward(self.parameters(), fwd, s_bar, div_row)

    def directional(self, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """s(z) (d, n) and J v (K, d, n) for K tangents v (K, d, n): one jvp each, vmapped."""
        points = z.T
        s_rep, jv = func.vmap(lambda t: func.jvp(self.model, (points,), (t,)))(v.transpose(1, 2))
        return s_rep[0].T, jv.transpose(1, 2)
