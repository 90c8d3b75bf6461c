"""Stochastic estimators of the ISM objective (Eq. 8) that avoid the exact trace of J = ds/dz.

With projections v satisfying E[v v^T] = I (so E[v^T J v] = Tr J = div s), per point and per projection:

- ssm (sliced score matching):       0.5 (v^T s)^2 + v^T J v
- ssm_vr (its variance-reduced form): 0.5 |s|^2     + v^T J v      (E[(v^T s)^2] = |s|^2 analytically)
- fd_ssm (finite differences): u = fd_eps v / |v| on the sphere of radius fd_eps (E[u u^T] = fd_eps^2 I / d),
      (1/8) |s(z+u) + s(z-u)|^2 + (d / (2 fd_eps^2)) <s(z+u) - s(z-u), u>,
  which equals 0.5 |s|^2 + d u^T J u / fd_eps^2 up to O(fd_eps^2) (Taylor expansion of s around z):
  two forward passes and no second derivatives.

Each is the mean over K projections per point of a norm term and a fitting term; the fitting term
agrees with div s, the ISM fitting term, in expectation (exactly for ssm and ssm_vr), just as DSM's
<s, eps>/sigma does (Prop. 2, Eq. 10). v^T J v is one Jacobian-vector product per projection
(kernel.directional). Projections are feature-major, (K, d, n) for the n points of a chunk. Each
estimator's term function (ssm_terms, ssm_vr_terms, fd_ssm_terms) is named by its row of registry.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

PROJECTIONS = ("rademacher", "gaussian", "sphere")


def draw_projections(kind: str, k: int, dim: int, n: int, generator: torch.Generator,
                     device: torch.device, dtype: torch.dtype) -> Tensor:
    """K projection vectors for each of n points, (K, d, n), with E[v v^T] = I.

    rademacher: entries +-1; gaussian: N(0, I); sphere: uniform on the sphere of radius sqrt(d).
    """
    shape = (k, dim, n)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=device, dtype=torch.int8)
        return bits.to(dtype).mul_(2).sub_(1)
    v = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if kind == "sphere":
        v.mul_(math.sqrt(dim) / v.norm(dim=1, keepdim=True))
    elif kind != "gaussian":
        raise ValueError(f"unknown projection {kind!r}: one of {', '.join(PROJECTIONS)}")
    return v


@dataclass
class EstimatorChunk:
    """One chunk's per-value terms and the parameter gradient of the sum over its points of the
    per-point objective (the mean over the K projections)."""

    norm: Tensor  # (K, n) or (1, n) per-value norm terms
    fit: Tensor  # (K, n) per-value fitting terms
    grad: list[Tensor]


def ssm_terms(kernel, z: Tensor, v: Tensor, fd_eps: float) -> EstimatorChunk:
    """ssm at points z (d, n) with projections v (K, d, n): norm 0.5 (v^T s)^2, fitting term v^T J v."""
    return _sliced(kernel, z, v, _sliced_norm)


def ssm_vr_terms(kernel, z: Tensor, v: Tensor, fd_eps: float) -> EstimatorChunk:
    """ssm_vr at points z (d, n) with projections v (K, d, n): norm 0.5 |s|^2, fitting term v^T J v."""
    return _sliced(kernel, z, v, _exact_norm)


def _sliced(kernel, z: Tensor, v: Tensor, norm_term) -> EstimatorChunk:
    """A sliced estimator's terms: v^T J v by the kernel's hand-written pass where it has one (the
    two-hidden-layer MLP), else Jacobian-vector products through autograd."""
    if hasattr(kernel, "sliced_forward"):
        fwd = kernel.sliced_forward(z, v)
        norm, s_bar = norm_term(fwd.s, v)
        return EstimatorChunk(norm, fwd.vjv, kernel.sliced_backward(fwd, s_bar, 1 / v.shape[0]))
    params = kernel.parameters()
    with torch.enable_grad():
        s, jv = kernel.directional(z, v)  # (d, n), (K, d, n), differentiable in the parameters
        fit = (v * jv).sum(1)  # v^T J v, (K, n)
        norm, _ = norm_term(s, v)
        objective = norm.mean(0).sum() + fit.mean(0).sum()
        grad = list(torch.autograd.grad(objective, params, allow_unused=True, materialize_grads=True))
    return EstimatorChunk(norm.detach(), fit.detach(), grad)


def _sliced_norm(s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """ssm's per-value norm term 0.5 (v^T s)^2, (K, n), and its derivative in s summed over points of the
    mean over projections, mean_k (v_k^T s) v_k."""
    vs = (v * s).sum(1)  # (K, n)
    return 0.5 * vs.square(), (vs[:, None, :] * v).mean(0)


def _exact_norm(s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """ssm_vr's norm term 0.5 |s|^2, (1, n), and its derivative s."""
    return 0.5 * s.square().sum(0, keepdim=True), s


def fd_ssm_terms(kernel, z: Tensor, v: Tensor, fd_eps: float) -> EstimatorChunk:
    """fd_ssm: forward passes at z + u and z - u for each projection, one reverse pass for both."""
    k, dim, n = v.shape
    u = v * (fd_eps / v.norm(dim=1, keepdim=True))  # (K, d, n) on the sphere of radius fd_eps
    u_fm = u.transpose(0, 1)  # (d, K, n)
    points = torch.cat([z[:, None, :] + u_fm, z[:, None, :] - u_fm], 1).reshape(dim, -1)  # (d, 2Kn)
    fwd = kernel.forward(points, with_div=False)
    s = fwd.s.detach().reshape(dim, 2 * k, n)
    s_plus, s_minus = s[:, :k], s[:, k:]
    total = s_plus + s_minus
    scale = dim / (2 * fd_eps**2)
    norm = 0.125 * total.square().sum(0)  # (K, n)
    fit = scale * ((s_plus - s_minus) * u_fm).sum(0)  # (K, n)
    # d/ds(z +- u) of the per-point objective mean_k [(1/8)|s+ + s-|^2 + scale <s+ - s-, u>]
    half = 0.25 / k * total
    pushed = (scale / k) * u_fm
    s_bar = torch.cat([half + pushed, half - pushed], 1).reshape(1, dim, -1)
    grad = [g[0] for g in kernel.backward(fwd, s_bar, None)]
    return EstimatorChunk(norm, fit, grad)
