"""The exact kernel of a noise-conditional score s(z, sigma) = a(sigma) f(z, sigma) + b(sigma) z
(conditioning.py): s, div s = a div f + b d with the trace taken in z only (sigma is each point's own,
fixed), J v for the sliced estimators, and parameter gradients of any weighted combination.

For a ConditionalMLP with two hidden layers the passes are written out by hand (conditional_two_layer.py:
the paper's bilinear divergence, the reverse pass weighted point by point). For other depths the d
tangent columns d f / d z_i are carried forward through the layers by hand (as
tangent.TangentKernel does; the first layer's tangent is its z columns); for a user's module they are
torch.func jvps, vmapped over the basis. Gradients by autograd. Points are feature-major, z (d, n), as
for every kernel (base.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, func

from dsmexp.core.conditioning import ConditionalMLP, NoiseConditional
from dsmexp.core.kernels.base import Forward
from dsmexp.core.kernels.conditional_two_layer import (
    conditional_backward,
    conditional_forward,
    conditional_weights,
)


class ConditionalKernel:
    """Kernel of a NoiseConditional model; every call takes each point's sigma (n,)."""

    def __init__(self, model: NoiseConditional) -> None:
        self.model = model
        self.mlp = model.net if isinstance(model.net, ConditionalMLP) else None
        self.by_hand = self.mlp is not None and len(self.mlp.hidden) == 2
        self.weights = None
        self.prepare()

    def describe(self) -> str:
        """Which passes this kernel runs, for the run's log."""
        if self.by_hand:
            return "the two-hidden-layer network by hand (conditional_two_layer.py)"
        if self.mlp is not None:
            return "tangents carried through the layers, autograd for the gradients"
        return "torch.func jvps of the model, autograd for the gradients"

    def prepare(self) -> None:
        """Read the current weights for the hand-written passes (once per step, after the optimiser has
        moved them); other networks need nothing, autograd reads their parameters directly."""
        if self.by_hand:
            self.weights = conditional_weights(self.mlp)

    def parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def forward(self, z: Tensor, sigma: Tensor, with_div: bool = True) -> Forward:
        """s (d, n) and div s (n,) (None without with_div) at z (d, n) with scales sigma (n,)."""
        points, sig = z.T, sigma.to(z.dtype)
        a, b = self.model.coefficients(sig)
        if self.by_hand:
            return self._forward_by_hand(z, sig, a, b, with_div)
        with torch.enable_grad():
            if not with_div:
                f, div_f = self.model.raw(points, sig), None
            elif self.mlp is not None:
                f, div_f = self._mlp_divergence(points, sig)
            else:
                f, div_f = self._module_divergence(points, sig)
            s = a[:, None] * f + b[:, None] * points
            div = None if div_f is None else a * div_f + b * points.shape[1]
        return Forward(s.T, div)

    def _forward_by_hand(self, z: Tensor, sigma: Tensor, a: Tensor, b: Tensor, with_div: bool) -> Forward:
        alpha = a / sigma if self.mlp.scale_output else a  # s = alpha f + b z, f the last layer's output
        fwd = conditional_forward(self.weights, self.mlp.activation, z, self.mlp.embed(sigma), with_div)
        s = torch.addcmul(b[None] * z, alpha[None], fwd.s)
        div = None if fwd.div is None else torch.addcmul(b * z.shape[0], alpha, fwd.div)
        return Forward(s, div, (fwd, alpha))

    def _mlp_divergence(self, points: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        net, dim = self.mlp, points.shape[1]
        act, layers = net.activation, net.layers
        h_in = torch.cat([points, net.embed(sigma)], 1)
        tangent = layers[0].weight[:, :dim].T.expand(points.shape[0], -1, -1)  # (n, d, width) of h
        a = h_in
        for i, layer in enumerate(layers[:-1]):
            h = layer(a)
            h_tangent = tangent if i == 0 else tangent @ layer.weight.T
            a = act.fn(h)
            tangent = act.slope(h, a)[:, None, :] * h_tangent
        last = layers[-1]
        f = last(a)
        if len(layers) == 1:  # no hidden layer: f is linear in z
            div = last.weight[:, :dim].diagonal().sum().expand(points.shape[0])
        else:
            div = (tangent * last.weight[None]).sum((1, 2))
        if net.scale_output:
            f, div = f / sigma[:, None], div / sigma
        return f, div

    def _module_divergence(self, points: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        n, dim = points.shape
        basis = torch.eye(dim, dtype=points.dtype, device=points.device)[:, None, :].expand(dim, n, dim)
        f_rep, jv = func.vmap(lambda t: func.jvp(lambda p: self.model.raw(p, sigma), (points,), (t,)))(basis)
        idx = torch.arange(dim, device=points.device)
        return f_rep[0], jv[idx, :, idx].sum(0)

    def backward(self, fwd: Forward, s_bar: Tensor, div_weights: list[Tensor | None] | None) -> list[Tensor]:
        """Gradients of sum_points <s, s_bar[r]> + sum_points div_weights[r] div s for each row r of
        s_bar (k, d, n) and its div_weights[r] (n,) (None: no divergence term in that row, or in any row
        when div_weights is None); each with a leading k."""
        if self.by_hand:
            inner, alpha = fwd.saved
            return conditional_backward(self.weights, self.mlp.activation, inner, s_bar * alpha,
                                        None if div_weights is None or inner.div is None else
                                        [None if w is None else w * alpha for w in div_weights])
        params = self.parameters()
        rows = []
        for r in range(s_bar.shape[0]):
            objective = (fwd.s * s_bar[r]).sum()
            if div_weights is not None and div_weights[r] is not None and fwd.div is not None:
                objective = objective + (fwd.div * div_weights[r]).sum()
            rows.append(torch.autograd.grad(objective, params, retain_graph=r < s_bar.shape[0] - 1,
                                            allow_unused=True, materialize_grads=True))
        return [torch.stack(g) for g in zip(*rows)]

    def directional(self, z: Tensor, sigma: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """s (d, n) and J v (K, d, n) (J = ds/dz) for K tangents v (K, d, n), differentiable in the
        parameters."""
        points, sig = z.T, sigma.to(z.dtype)
        a, b = self.model.coefficients(sig)
        with torch.enable_grad():
            f_rep, jv = func.vmap(lambda t: func.jvp(lambda p: self.model.raw(p, sig), (points,), (t,)))(
                v.transpose(1, 2))
            s = a[:, None] * f_rep[0] + b[:, None] * points
            js = a[None, :, None] * jv + b[None, :, None] * v.transpose(1, 2)
        return s.T, js.transpose(1, 2)
