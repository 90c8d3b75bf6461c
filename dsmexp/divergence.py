"""Exact divergence of the score network, div s = Tr(ds/dz) (the ISM fitting term, Eq. 8), and the
parameter gradients (vector-Jacobian products) of any combination of 0.5|s|^2, <s, c> and div s.

Points are feature-major: z has shape (d, n). Two kernels share one interface:

- TwoLayerKernel, for MLPs with two hidden layers (the paper's 16-32 network), is written out by hand.
  With s = W3 a2 + b3, a2 = phi(W2 a1 + b2), a1 = phi(W1 z + b1) and D_l = phi'(h_l),
  ds/dz = W3 diag(D2) W2 diag(D1) W1, so
      div s = sum_jk D2_k C_kj D1_j   with   C = W2 * (W1 W3)^T,
  a bilinear form whose cost does not grow with d. Forward and reverse passes are explicit.
- TangentKernel, for any depth (hidden=[] is a linear model), carries d forward-mode tangent columns
  through the network and lets autograd differentiate them. It is exact too, and the reference for
  the fast kernel in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dsmexp.models import ScoreMLP


@dataclass
class Forward:
    """What a kernel's forward pass leaves for its backward pass."""

    s: Tensor  # (d, n) score
    div: Tensor  # (n,) exact divergence
    saved: dict = field(default_factory=dict)


class TwoLayerKernel:
    """Hand-written forward and reverse pass for d -> n1 -> n2 -> d MLPs."""

    def __init__(self, model: ScoreMLP) -> None:
        assert len(model.hidden) == 2, "TwoLayerKernel needs exactly two hidden layers"
        self.model = model
        self.act = model.activation

    def weights(self) -> tuple[Tensor, ...]:
        """(W1, b1, W2, b2, W3, b3) detached, plus B = W1 W3 and C = W2 * B^T for the divergence."""
        w1, b1, w2, b2, w3, b3 = (p.detach() for p in self.model.parameters())
        bmat = w1 @ w3
        return w1, b1, w2, b2, w3, b3, bmat, w2 * bmat.T

    def forward(self, z: Tensor) -> Forward:
        weights = self.weights()
        w1, b1, w2, b2, w3, b3, bmat, cmat = weights
        h1 = torch.addmm(b1[:, None], w1, z)
        a1 = self.act.fn(h1)
        d1, e1 = self.act.derivatives(h1, a1)
        h2 = torch.addmm(b2[:, None], w2, a1)
        a2 = self.act.fn(h2)
        d2, e2 = self.act.derivatives(h2, a2)
        s = torch.addmm(b3[:, None], w3, a2)
        u = cmat @ d1  # d(div)/d(D2), shape (n2, n)
        div = (d2 * u).sum(0)
        saved = dict(z=z, a1=a1, d1=d1, e1=e1, a2=a2, d2=d2, e2=e2, u=u)
        return Forward(s, div, saved | {"weights": weights})

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        """Gradients of sum_points <s, s_bar[r]> (+ div s when r == div_row), one row r per objective.

        s_bar has shape (k, d, n); each returned gradient has a leading dimension k.
        """
        v = fwd.saved
        w1, _, w2, _, w3, _, bmat, cmat = v["weights"]
        g_w3, g_b3 = s_bar @ v["a2"].T, s_bar.sum(2)
        hb2 = (w3.T @ s_bar).mul_(v["d2"])
        if div_row is not None:
            hb2[div_row].addcmul_(v["e2"], v["u"])
        g_w2, g_b2 = hb2 @ v["a1"].T, hb2.sum(2)
        hb1 = (w2.T @ hb2).mul_(v["d1"])
        if div_row is not None:
            hb1[div_row].addcmul_(v["e1"], cmat.T @ v["d2"])
        g_w1, g_b1 = hb1 @ v["z"].T, hb1.sum(2)
        if div_row is not None:  # div also depends on the weights through C = W2 * (W1 W3)^T
            g_c = v["d2"] @ v["d1"].T
            g_b = (g_c * w2).T
            g_w2[div_row] += g_c * bmat.T
            g_w1[div_row] += g_b @ w3.T
            g_w3[div_row] += w1.T @ g_b
        return [g_w1, g_b1, g_w2, g_b2, g_w3, g_b3]


class TangentKernel:
    """Any-depth MLP: d tangent columns carried forward, gradients by autograd."""

    def __init__(self, model: ScoreMLP) -> None:
        self.model = model
        self.act = model.activation

    def forward(self, z: Tensor) -> Forward:
        layers = self.model.layers
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
                tangent = self.act.derivatives(h, a)[0][:, None, :] * h_tangent
            s = layers[-1](a)
            if tangent is None:  # linear model: ds/dz = W everywhere
                div = layers[-1].weight.diagonal().sum().expand(a.shape[0])
            else:
                div = (tangent * layers[-1].weight[None]).sum((1, 2))
        return Forward(s.T, div)

    def backward(self, fwd: Forward, s_bar: Tensor, div_row: int | None) -> list[Tensor]:
        params = list(self.model.parameters())
        rows = []
        for r in range(s_bar.shape[0]):
            objective = (fwd.s * s_bar[r]).sum()
            if r == div_row:
                objective = objective + fwd.div.sum()
            rows.append(torch.autograd.grad(objective, params, retain_graph=r < s_bar.shape[0] - 1))
        return [torch.stack(g) for g in zip(*rows)]


Kernel = TwoLayerKernel | TangentKernel


def make_kernel(model: ScoreMLP) -> Kernel:
    """The fastest exact kernel for this network."""
    return TwoLayerKernel(model) if len(model.hidden) == 2 else TangentKernel(model)
