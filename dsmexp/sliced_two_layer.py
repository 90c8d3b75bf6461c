"""v^T J v for the two-hidden-layer MLP written out by hand, with its reverse pass (the sliced
estimators of dsmexp/estimators.py on the paper's network, without autograd).

With s = W3 a2 + b3, a2 = phi(h2), h2 = W2 a1 + b2, a1 = phi(h1), h1 = W1 z + b1 and D_l = phi'(h_l),
J = W3 diag(D2) W2 diag(D1) W1, so for each projection v

    v^T J v = sum_m q_m D2_m r_m,   q = W3^T v,   r = W2 (D1 * p),   p = W1 v,

four products with d-sized operands per point (W1 z, W3 a2, W1 v, W3^T v) and width-sized ones between.
The reverse pass of sum_points <s, s_bar> + w sum_{points, k} v_k^T J v_k follows the same graph;
phi'' enters through dD_l/dh_l as in the exact-trace kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dsmexp.models import Activation
from dsmexp.two_layer import TwoLayerWeights, two_layer_layers


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
