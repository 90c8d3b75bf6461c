"""The paper's network, d -> n1 -> n2 -> d with two hidden layers, written out by hand: the exact
divergence with its reverse pass (TwoLayerKernel) and the sliced pass v^T J v with its reverse pass (for
the estimators of dsmexp/core/objectives/estimators.py). See docs/architecture.md, Kernels.

With s = W3 a2 + b3, a2 = phi(h2), h2 = W2 a1 + b2, a1 = phi(h1), h1 = W1 z + b1 and D_l = phi'(h_l),
ds/dz = W3 diag(D2) W2 diag(D1) W1, so

    div s = sum_jk D2_k C_kj D1_j   with   C = W2 * (W1 W3)^T   (the ISM fitting term, Eq. 8),

a bilinear form whose cost does not grow with d, and for each projection v

    v^T J v = sum_m q_m D2_m r_m,   q = W3^T v,   r = W2 (D1 * p),   p = W1 v,

four products with d-sized operands per point and width-sized ones between. The reverse passes follow
the same graphs; phi'' enters through dD_l/dh_l.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.core.kernels.base import Forward, mlp_directional
from dsmexp.core.networks import Activation, ScoreMLP


@dataclass(frozen=True)
class TwoLayerWeights:
    """The network's weights for one step, detached, with the products the divergence needs."""

    w1: Tensor
    b1: Tensor  # (n1, 1)
    w2: Tensor
    b2: Tensor
    w3: Tensor
    b3: Tensor
    w2t: Tensor  # contiguous transposes: small GEMMs are fastest on contiguous operands
    w3t: Tensor
    bmat: Tensor  # B = W1 W3, (n1, n2)
    cmat: Tensor  # C = W2 * B^T, (n2, n1)
    cmatt: Tensor


def two_layer_weights(model: ScoreMLP) -> TwoLayerWeights:
    return weights_of(*(p.detach() for p in model.parameters()))


def weights_of(w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor) -> TwoLayerWeights:
    """TwoLayerWeights of the six (detached) parameters, biases as vectors."""
    bmat = w1 @ w3
    cmat = (w2 * bmat.T).contiguous()
    return TwoLayerWeights(w1, b1[:, None], w2, b2[:, None], w3, b3[:, None], w2.T.contiguous(),
                           w3.T.contiguous(), bmat, cmat, cmat.T.contiguous())


def two_layer_layers(w: TwoLayerWeights, act: Activation, z: Tensor) -> tuple[Tensor, ...]:
    """The forward pass through both hidden layers: (h1, a1, D1, h2, a2, D2, s) for points z (d, n)."""
    h1 = torch.addmm(w.b1, w.w1, z)
    a1 = act.fn(h1)
    d1 = act.slope(h1, a1)
    h2 = torch.addmm(w.b2, w.w2, a1)
    a2 = act.fn(h2)
    d2 = act.slope(h2, a2)
    return h1, a1, d1, h2, a2, d2, torch.addmm(w.b3, w.w3, a2)


def two_layer_forward(w: TwoLayerWeights, act: Activation, z: Tensor, with_div: bool = True) -> Forward:
    """s, the exact divergence, and what the reverse pass needs, for points z (d, n).

    with_div=False skips the divergence (the reverse pass then takes div_row=None only)."""
    h1, a1, d1, h2, a2, d2, s = two_layer_layers(w, act, z)
    keep = act.uses_preactivation
    if not with_div:
        return Forward(s, None, (z, h1 if keep else None, a1, d1, h2 if keep else None, a2, d2, None, None))
    u = w.cmat @ d1  # d(div)/d(D2), (n2, n)
    v = w.cmatt @ d2  # d(div)/d(D1), (n1, n)
    div = (d1 * v).sum(0)  # = sum_k D2_k u_k, through the narrower layer
    return Forward(s, div, (z, h1 if keep else None, a1, d1, h2 if keep else None, a2, d2, u, v))


def two_layer_backward(w: TwoLayerWeights, act: Activation, fwd: Forward, s_bar: Tensor,
                       div_row: int | None) -> list[Tensor]:
    """Gradients of sum_points <s, s_bar[r]> (+ div s when r == div_row); leading dimension k rows."""
    z, h1, a1, d1, h2, a2, d2, u, v = fwd.saved
    g_w3, g_b3 = s_bar @ a2.T, s_bar.sum(2)
    c2 = w.w3t @ s_bar  # (k, n2, n): cotangent of a2, then of h2
    act.backprop(c2, div_row, h2, a2, d2, u)
    g_w2, g_b2 = c2 @ a1.T, c2.sum(2)
    c1 = w.w2t @ c2  # (k, n1, n): cotangent of a1, then of h1
    act.backprop(c1, div_row, h1, a1, d1, v)
    g_w1, g_b1 = (z @ c1.transpose(1, 2)).transpose(1, 2), c1.sum(2)
    if div_row is not None:  # div also depends on the weights through C = W2 * (W1 W3)^T
        g_c = d2 @ d1.T
        g_b = (g_c * w.w2).T
        g_w2[div_row] += g_c * w.bmat.T
        g_w1[div_row] += g_b @ w.w3.T
        g_w3[div_row] += w.w1.T @ g_b
    return [g_w1, g_b1, g_w2, g_b2, g_w3, g_b3]


@dataclass
class SlicedForward:
    s: Tensor  # (d, n)
    vjv: Tensor  # (K, n)
    saved: tuple


def sliced_forward(w: TwoLayerWeights, act: Activation, z: Tensor, v: Tensor) -> SlicedForward:
    """s at points z (d, n) and v^T J v for projections v (K, d, n)."""
    h1, a1, d1, h2, a2, d2, s = two_layer_layers(w, act, z)
    p = w.w1 @ v  # (K, n1, n)
    q = w.w3t @ v  # (K, n2, n)
    t1 = d1 * p
    r = w.w2 @ t1  # (K, n2, n)
    qd2 = q * d2
    vjv = (qd2 * r).sum(1)
    keep = act.uses_preactivation
    return SlicedForward(s, vjv, (z, v, h1 if keep else None, a1, d1, h2 if keep else None, a2, d2, p, q,
                                  t1, r, qd2))


def sliced_backward(w: TwoLayerWeights, act: Activation, fwd: SlicedForward, s_bar: Tensor,
                    weight: float) -> list[Tensor]:
    """Gradients of sum_points <s, s_bar> + weight * sum_{points, k} v_k^T J v_k."""
    z, v, h1, a1, d1, h2, a2, d2, p, q, t1, r, qd2 = fwd.saved
    g_q = (weight * d2) * r  # d/dq, (K, n2, n)
    g_r = weight * qd2  # d/dr
    u2 = weight * (q * r).sum(0)  # d/dD2, (n2, n)
    g_w3 = s_bar @ a2.T + (v @ g_q.transpose(1, 2)).sum(0)  # s = W3 a2 and q = W3^T v
    g_b3 = s_bar.sum(1)
    c2 = (w.w3t @ s_bar)[None]  # cotangent of a2, then of h2 (adds phi''(h2) * u2)
    act.backprop(c2, 0, h2, a2, d2, u2)
    c2 = c2[0]
    g_w2 = c2 @ a1.T + (g_r @ t1.transpose(1, 2)).sum(0)
    g_b2 = c2.sum(1)
    g_t1 = w.w2t @ g_r  # (K, n1, n)
    u1 = (p * g_t1).sum(0)  # d/dD1
    c1 = (w.w2t @ c2)[None]
    act.backprop(c1, 0, h1, a1, d1, u1)
    c1 = c1[0]
    g_p = d1 * g_t1
    g_w1 = c1 @ z.T + (g_p @ v.transpose(1, 2)).sum(0)  # h1 = W1 z and p = W1 v
    g_b1 = c1.sum(1)
    return [g_w1, g_b1, g_w2, g_b2, g_w3, g_b3]


class TwoLayerKernel:
    """Hand-written forward and reverse pass for d -> n1 -> n2 -> d MLPs (optionally torch.compile'd)."""

    def __init__(self, model: ScoreMLP, compile: bool = False) -> None:
        assert len(model.hidden) == 2, "TwoLayerKernel needs exactly two hidden layers"
        self.model, self.act = model, model.activation
        self._forward, self._backward = two_layer_forward, two_layer_backward
        if compile:
            self._forward = torch.compile(two_layer_forward, dynamic=False)
            self._backward = torch.compile(two_layer_backward, dynamic=False)
        self.prepare()

    def prepare(self) -> None:
        """Read the current weights; call once per step, after the optimiser has moved them."""
        self.weights = two_layer_weights(self.model)

    def forward(self, z: Tensor, with_div: bool = True) -> Forward:
        return self._forward(self.weights, self.act, z, with_div)

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        return self._backward(self.weights, self.act, fwd, s_bar, div_row)

    def parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def directional(self, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return mlp_directional(self.model, z, v)

    def sliced_forward(self, z: Tensor, v: Tensor):
        """s and v^T J v by hand (sliced_forward): the sliced estimators' fast path."""
        return sliced_forward(self.weights, self.act, z, v)

    def sliced_backward(self, fwd, s_bar: Tensor, weight: float) -> list[Tensor]:
        return sliced_backward(self.weights, self.act, fwd, s_bar, weight)
