"""Exact divergence of the score network, div s = Tr(ds/dz) (the ISM fitting term, Eq. 8), and the
parameter gradients (vector-Jacobian products) of any combination of <s, c> and div s.

Points are feature-major: z has shape (d, n). Every kernel shares one interface: prepare once per step,
then per chunk forward (with or without div) and backward, plus directional (s and the Jacobian-vector
products J v that the sliced estimators of dsmexp/estimators.py need) and parameters. Here:

- TwoLayerKernel, for MLPs with two hidden layers (the paper's 16-32 network), is written out by hand.
  With s = W3 a2 + b3, a2 = phi(W2 a1 + b2), a1 = phi(W1 z + b1) and D_l = phi'(h_l),
  ds/dz = W3 diag(D2) W2 diag(D1) W1, so
      div s = sum_jk D2_k C_kj D1_j   with   C = W2 * (W1 W3)^T,
  a bilinear form whose cost does not grow with d. Forward and reverse passes are explicit.
- TangentKernel, for any depth (hidden=[] is a linear model), carries d forward-mode tangent columns
  through the network and lets autograd differentiate them. It is exact too, and the reference for
  the fast kernels in the tests.

Other depths use the chain-product trace of dsmexp/chain_trace.py (cost independent of d), and any other
nn.Module the torch.func kernel of dsmexp/module_kernel.py; dsmexp/kernels.py make_kernel picks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dsmexp.models import Activation, ScoreMLP
from dsmexp.sliced_two_layer import sliced_backward, sliced_forward
from dsmexp.two_layer import TwoLayerWeights, two_layer_layers, two_layer_weights


@dataclass
class Forward:
    """What a kernel's forward pass leaves for its backward pass."""

    s: Tensor  # (d, n) score
    div: Tensor | None  # (n,) exact divergence (None when not asked for)
    saved: tuple = field(default_factory=tuple)


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
        """s and v^T J v by hand (dsmexp/sliced_two_layer.py): the sliced estimators' fast path."""
        return sliced_forward(self.weights, self.act, z, v)

    def sliced_backward(self, fwd, s_bar: Tensor, weight: float) -> list[Tensor]:
        return sliced_backward(self.weights, self.act, fwd, s_bar, weight)


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


Kernel = TwoLayerKernel | TangentKernel
