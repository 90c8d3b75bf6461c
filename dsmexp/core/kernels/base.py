"""What every exact kernel is: the Kernel protocol, the Forward record a forward pass leaves for its
backward pass, and the two passes kernels share (autograd_backward, mlp_directional).

A kernel computes the score s, the exact divergence div s = Tr(ds/dz) (the ISM fitting term, Eq. 8)
and the parameter gradients (vector-Jacobian products) of any combination of <s, c> and div s. Points are
feature-major: z has shape (d, n). Kernels: two_layer.TwoLayerKernel (the paper's two-hidden-layer MLP,
by hand), tangent.TangentKernel (any depth, forward-mode tangents), chain.ChainKernel (any depth, the
chain-product trace), module.ModuleKernel (any nn.Module, torch.func); select.make_kernel picks one
(docs/architecture.md, Kernels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from dsmexp.core.networks import ScoreMLP


@dataclass
class Forward:
    """What a kernel's forward pass leaves for its backward pass."""

    s: Tensor  # (d, n) score
    div: Tensor | None  # (n,) exact divergence (None when not asked for)
    saved: tuple = field(default_factory=tuple)


class Kernel(Protocol):
    """The interface of every exact kernel; objectives.step.step_terms and the estimators use only this.

    prepare() once per step (after the optimiser moved the weights); then per chunk of points z (d, n):
    forward(z, with_div) -> Forward with s (d, n) and div (n,) (None without with_div);
    backward(fwd, s_bar, div_row) -> one gradient per parameter, each with a leading dimension of
    s_bar's k rows: the gradient of sum_points <s, s_bar[r]> (+ div s when r == div_row);
    directional(z, v) -> (s (d, n), J v (K, d, n)) for the sliced estimators; parameters().
    A kernel may also offer sliced_forward / sliced_backward (a fast v^T J v; see two_layer.py).
    """

    def prepare(self) -> None: ...

    def forward(self, z: Tensor, with_div: bool = True) -> Forward: ...

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]: ...

    def directional(self, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]: ...

    def parameters(self) -> list[Tensor]: ...


def autograd_backward(params: list[Tensor], fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
    """Gradients of sum_points <s, s_bar[r]> (+ div s when r == div_row), one autograd pass per row r."""
    rows = []
    for r in range(s_bar.shape[0]):
        objective = (fwd.s * s_bar[r]).sum()
        if r == div_row:
            objective = objective + fwd.div.sum()
        rows.append(torch.autograd.grad(objective, params, retain_graph=r < s_bar.shape[0] - 1,
                                        allow_unused=True, materialize_grads=True))
    return [torch.stack(g) for g in zip(*rows)]


def mlp_directional(model: ScoreMLP, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """s(z) (d, n) and the Jacobian-vector products J v (K, d, n) for K tangents v (K, d, n), by
    carrying the tangents forward through the layers (forward mode by hand); differentiable in the
    parameters by autograd."""
    act = model.activation
    a, t = z, v
    for layer in model.layers[:-1]:
        h = torch.addmm(layer.bias[:, None], layer.weight, a)
        a = act.fn(h)
        t = act.slope(h, a) * (layer.weight @ t)
    last = model.layers[-1]
    return torch.addmm(last.bias[:, None], last.weight, a), last.weight @ t
