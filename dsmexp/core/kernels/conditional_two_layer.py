"""The noise-conditional two-hidden-layer MLP by hand: the paper's bilinear divergence (two_layer.py) with
sigma's embedding folded into a per-point first-layer bias, and a reverse pass that weights the
divergence point by point (multi-scale objectives weight each point by lambda(sigma_p); hybrid trains
div s at some points only).

With h1 = W1z z + W1e e(sigma) + b1 (W1 = [W1z | W1e]; the embedding e has no trained parameters), the
network f is two_layer's with w1 = W1z and the bias beta = W1e e + b1 per point, so

    df/dz = W3 diag(D2) W2 diag(D1) W1z,   div f = sum_jk D2_k C_kj D1_j,   C = W2 * (W1z W3)^T,

whatever the embedding. The score is s = alpha f + beta z (conditioning.py; alpha carries the optional
1/sigma output scaling), so div s = alpha div f + beta d and every cotangent of s or of div s reaches f
multiplied by alpha.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from dsmexp.core.conditioning import ConditionalMLP
from dsmexp.core.kernels.base import Forward
from dsmexp.core.kernels.two_layer import TwoLayerWeights, two_layer_layers, weights_of
from dsmexp.core.networks import Activation


@dataclasses.dataclass(frozen=True)
class ConditionalWeights:
    """One step's detached weights: the z part as TwoLayerWeights, and the embedding's columns of W1."""

    core: TwoLayerWeights  # w1 = W1z; b1 is replaced per call by the per-point bias
    w1e: Tensor  # (n1, features)


def conditional_weights(net: ConditionalMLP) -> ConditionalWeights:
    w1, b1, w2, b2, w3, b3 = (p.detach() for p in net.parameters())
    return ConditionalWeights(weights_of(w1[:, :net.dim].contiguous(), b1, w2, b2, w3, b3),
                              w1[:, net.dim:].contiguous())


def conditional_forward(w: ConditionalWeights, act: Activation, z: Tensor, embedding: Tensor,
                        with_div: bool) -> Forward:
    """f (d, n), div f (n,) (None without with_div) and the reverse pass's records, for points z (d, n)
    with their sigma embeddings (n, features). Only v = C^T D2 (d div / d D1) is formed here; the reverse
    pass forms u = C (D1 * weight) with each row's weights folded in."""
    core = dataclasses.replace(w.core, b1=torch.addmm(w.core.b1, w.w1e, embedding.T))  # W1e e + b1
    h1, a1, d1, h2, a2, d2, f = two_layer_layers(core, act, z)
    keep = act.uses_preactivation
    v = div = None
    if with_div:
        v = w.core.cmatt @ d2  # (n1, n)
        div = (d1 * v).sum(0)
    return Forward(f, div, (z, h1 if keep else None, a1, d1, h2 if keep else None, a2, d2, v, embedding))


def conditional_backward(w: ConditionalWeights, act: Activation, fwd: Forward, f_bar: Tensor,
                         div_weights: list[Tensor | None] | None) -> list[Tensor]:
    """Gradients of sum_points <f, f_bar[r]> + sum_points div_weights[r] div f for each row r of f_bar
    (k, d, n) and its div_weights[r] (n,) (None for a row without the divergence, or for all rows), each
    with a leading k; in the order of ConditionalMLP.parameters() (W1 whole)."""
    z, h1, a1, d1, h2, a2, d2, v, embedding = fwd.saved
    c = w.core
    rows = [r for r, weight in enumerate(div_weights or ()) if weight is not None]
    d1w = {r: d1 * div_weights[r] for r in rows}  # (n1, n) each: D1 with the row's weights
    g_w3, g_b3 = f_bar @ a2.T, f_bar.sum(2)
    c2 = c.w3t @ f_bar  # (k, n2, n): cotangent of a2, then of h2
    act.backprop_rows(c2, {r: c.cmat @ d1w[r] for r in rows}, h2, a2, d2)  # d div / d D2 = C D1, weighted
    g_w2, g_b2 = c2 @ a1.T, c2.sum(2)
    c1 = c.w2t @ c2  # (k, n1, n): cotangent of a1, then of h1
    act.backprop_rows(c1, {r: v * div_weights[r] for r in rows}, h1, a1, d1)  # d div / d D1 = C^T D2
    g_w1z, g_b1 = (z @ c1.transpose(1, 2)).transpose(1, 2), c1.sum(2)
    for r in rows:  # div f also depends on the weights through C = W2 * (W1z W3)^T
        g_c = d2 @ d1w[r].T  # (n2, n1)
        g_b = (g_c * c.w2).T
        g_w2[r] += g_c * c.bmat.T
        g_w1z[r] += g_b @ c.w3.T
        g_w3[r] += c.w1.T @ g_b
    return [torch.cat([g_w1z, c1 @ embedding], 2), g_b1, g_w2, g_b2, g_w3, g_b3]
