"""Exact divergence of an MLP of any depth at a cost that does not grow with the dimension d.

With s = W_L a_{L-1} + b_L, a_l = phi(h_l), h_l = W_l a_{l-1} + b_l (a_0 = z) and D_l = diag(phi'(h_l)),
the Jacobian is J = W_L D_{L-1} W_{L-1} ... D_2 W_2 D_1 W_1, and by the cyclic property of the trace

    div s = Tr J = Tr(D_1 B D_{L-1} W_{L-1} ... D_2 W_2),   B = W_1 W_L (n_1 x n_{L-1}),

a chain of width-sized products per point instead of d tangent columns through the whole network;
d enters only through B, once per step. For two hidden
layers this is the bilinear form of two_layer.py (TwoLayerKernel, written out by hand there);
for one, div s = sum_j B_jj D_1j; for none (s = W z + b), Tr W. Gradients come from autograd through
the chain; TangentKernel (d columns) is the reference in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsmexp.core.kernels.base import Forward, autograd_backward, mlp_directional
from dsmexp.core.networks import ScoreMLP


def chain_divergence(model: ScoreMLP, slopes: list[Tensor], n: int) -> Tensor:
    """Tr J at each of n points from the hidden layers' slopes D_l (n_l, n), feature-major; (n,).

    The product is taken from the output end: M_H = B D_H W_H (n_1 x n_{H-1} per point, H hidden
    layers), M_l = M_{l+1} D_l W_l, and Tr J = sum_j D_1j (M_3 D_2 W_2)_jj, whose diagonal needs no
    product. The first step is one GEMM for all points, Q = R^T D_H with the fixed R_k,(m,j) =
    W_H,km B_jk (W_2,mj folded in when H = 3); each further layer is one more GEMM.
    """
    layers = model.layers
    last = layers[-1].weight
    if not slopes:  # linear model: the same trace at every point
        return last.diagonal().sum().expand(n)
    bmat = layers[0].weight @ last  # B = W_1 W_L, (n_1, n_H)
    if len(slopes) == 1:
        return (bmat.diagonal()[:, None] * slopes[0]).sum(0)
    w2 = layers[1].weight  # (n_2, n_1)
    if len(slopes) == 2:  # the bilinear form of TwoLayerKernel: sum_mj D_2m (W_2 * B^T)_mj D_1j
        return (slopes[1] * ((w2 * bmat.T) @ slopes[0])).sum(0)
    n1, hidden = slopes[0].shape[0], len(slopes)
    w_top = layers[hidden - 1].weight  # W_H, (n_H, n_{H-1})
    rmat = w_top[:, :, None] * bmat.T[:, None, :]  # R[k, m, j] = W_H,km B_jk, (n_H, n_{H-1}, n_1)
    if hidden == 3:
        rmat = rmat * w2[None]
    m = (rmat.reshape(rmat.shape[0], -1).T @ slopes[-1]).reshape(-1, n1, n)  # M_H as (n_{H-1}, n_1, n)
    for layer, slope in zip(layers[hidden - 2:1:-1], slopes[hidden - 2:1:-1]):  # l = H-1 ... 3
        weighted = (slope[:, None, :] * m).reshape(slope.shape[0], -1)
        m = (layer.weight.T @ weighted).reshape(-1, n1, n)  # M_l = M_{l+1} D_l W_l, (n_{l-1}, n_1, n)
    if hidden > 3:
        m = m * w2[:, :, None]
    diagonal = (slopes[1][:, None, :] * m).sum(0)  # (M_3 D_2 W_2)_jj, (n_1, n)
    return (slopes[0] * diagonal).sum(0)


class ChainKernel:
    """Any-depth MLP: exact trace by the chain of width-sized products, gradients by autograd."""

    def __init__(self, model: ScoreMLP, compile: bool = False) -> None:
        self.model = model
        self.act = model.activation

    def prepare(self) -> None:
        """Nothing to precompute: autograd reads the parameters directly."""

    def parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def forward(self, z: Tensor, with_div: bool = True) -> Forward:
        layers, act = self.model.layers, self.act
        with torch.enable_grad():
            a, slopes = z, []
            for layer in layers[:-1]:
                h = torch.addmm(layer.bias[:, None], layer.weight, a)
                a = act.fn(h)
                slopes.append(act.slope(h, a))
            s = torch.addmm(layers[-1].bias[:, None], layers[-1].weight, a)
            if not with_div:
                return Forward(s, None)
            div = chain_divergence(self.model, slopes, z.shape[1])
        return Forward(s, div)

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        return autograd_backward(self.parameters(), fwd, s_bar, div_row)

    def directional(self, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return mlp_directional(self.model, z, v)
