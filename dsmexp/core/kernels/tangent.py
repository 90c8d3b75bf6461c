"""The exact divergence for an MLP of any depth (hidden=[] is a linear model): d forward-mode tangent
columns carried through the network, gradients by autograd. Exact, and the reference for the fast
kernels in the tests (docs/architecture.md, Kernels)."""

from __future__ import annotations

import torch
from torch import Tensor

from dsmexp.core.kernels.base import Forward, autograd_backward, mlp_directional
from dsmexp.core.networks import ScoreMLP


class TangentKernel:
    """Any-depth MLP: d tangent columns carried forward, gradients by autograd."""

    def __init__(self, model: ScoreMLP, compile: bool = False) -> None:
        self.model = model
        self.act = model.activation

    def prepare(self) -> None:
        """Nothing to precompute: autograd reads the parameters directly."""

    def forward(self, z: Tensor, with_div: bool = True) -> Forward:
        layers = self.model.layers
        if not with_div:
            with torch.enable_grad():
                return Forward(self.model(z.T).T, None)
        with torch.enable_grad():
            a = z.T  # (n, d)
            tangent = None  # (n, d, width): d(a)/d(z_i) for each input direction i
            for layer in layers[:-1]:
                h = layer(a)
                if tangent is None:
                    h_tangent = layer.weight.T.expand(a.shape[0], -1, -1)
                else:
                    h_tangent = tangent @ layer.weight.T
                a = self.act.fn(h)
                tangent = self.act.slope(h, a)[:, None, :] * h_tangent
            s = layers[-1](a)
            if tangent is None:  # linear model: ds/dz = W everywhere
                div = layers[-1].weight.diagonal().sum().expand(a.shape[0])
            else:
                div = (tangent * layers[-1].weight[None]).sum((1, 2))
        return Forward(s.T, div)

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        return autograd_backward(list(self.model.parameters()), fwd, s_bar, div_row)

    def parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def directional(self, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return mlp_directional(self.model, z, v)
