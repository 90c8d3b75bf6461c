"""The two-hidden-layer MLP's weights for one step and its forward pass through the hidden layers,
shared by the exact-trace kernel (divergence.TwoLayerKernel) and the sliced pass (sliced_two_layer.py).

With s = W3 a2 + b3, a2 = phi(W2 a1 + b2), a1 = phi(W1 z + b1) and D_l = phi'(h_l), the divergence is the
bilinear form sum_jk D2_k C_kj D1_j with C = W2 * (W1 W3)^T (the ISM fitting term, Eq. 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.models import Activation, ScoreMLP


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
    w1, b1, w2, b2, w3, b3 = (p.detach() for p in model.parameters())
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
