"""Every per-step term of DESIGN.md section 4, computed on one shared batch z = x + sigma * eps.

ISM (Eq. 8) = norm + fit_ism and DSM-S (Eq. 9) = norm + fit_dsm share the norm 0.5 |s(z)|^2; their
fitting terms, mean div s(z) and mean <s(z), eps>/sigma, agree in expectation (Prop. 2, Eq. 10).
DSM (Eq. 7) adds the constant const_dsm = mean |eps|^2 / (2 sigma^2) and has the same gradient as DSM-S.
One forward pass per chunk serves all terms; metric sums are kept in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.divergence import Kernel

METRICS = ("loss", "norm", "fit_ism", "fit_dsm", "const_dsm", "loss_ism", "loss_dsm_s", "loss_dsm",
           "fit_ism_se", "fit_dsm_se", "grad_norm_ism", "grad_norm_dsm", "grad_cos")


@dataclass
class StepTerms:
    """One step's metrics (float64, ordered as METRICS, on the step's device) and the trained gradient."""

    metrics: Tensor
    grad: list[Tensor]


class Moments:
    """Mean and standard error of a stream of per-point values, accumulated in float64 around a shift."""

    def __init__(self) -> None:
        self.count = 0
        self.shift: Tensor | None = None
        self.sum1: Tensor | float = 0.0
        self.sum2: Tensor | float = 0.0

    def add(self, values: Tensor) -> None:
        values = values.double()
        if self.shift is None:
            self.shift = values.mean()
        centred = values - self.shift
        self.sum1 = self.sum1 + centred.sum()
        self.sum2 = self.sum2 + (centred * centred).sum()
        self.count += values.numel()

    def mean(self) -> Tensor:
        return self.shift + self.sum1 / self.count

    def standard_error(self) -> Tensor:
        var = (self.sum2 - self.sum1 * self.sum1 / self.count) / max(self.count - 1, 1)
        return var.clamp_min(0).sqrt() / math.sqrt(self.count)


def step_terms(kernel: Kernel, x: Tensor, eps: Tensor | None, sigma: float, loss: str,
               diagnostics: bool = True, chunk_size: int = 16384) -> StepTerms:
    """All section-4 terms at data x (N, d) and noise eps (M, N, d), and the gradient of `loss`.

    With diagnostics=False only the trained objective is differentiated (grad_norm of the other and
    grad_cos are NaN); every other column is still computed. sigma = 0 uses z = x and no noise.
    """
    noisy = sigma > 0
    dim = x.shape[1]
    z = (x + sigma * eps if noisy else x).reshape(-1, dim).T.contiguous()  # (d, P) feature-major
    e = eps.reshape(-1, dim).T.contiguous() if noisy else None
    want_ism = loss == "ism" or diagnostics
    want_dsm = noisy and (loss != "ism" or diagnostics)
    stats = {name: Moments() for name in ("norm", "fit_ism", "fit_dsm", "const_dsm", "loss_dsm")}
    grads: list[Tensor] | None = None
    for start in range(0, z.shape[1], chunk_size):
        chunk = slice(start, start + chunk_size)
        fwd, s_bar = _chunk_terms(kernel, z[:, chunk], e[:, chunk] if noisy else None, sigma,
                                  stats, want_ism, want_dsm)
        g = kernel.backward(fwd, s_bar, 0 if want_ism else None)
        grads = g if grads is None else [a.add_(b) for a, b in zip(grads, g)]
    count = z.shape[1]
    grads = [g / count for g in grads]
    g_ism = [g[0] for g in grads] if want_ism else None
    g_dsm = [g[-1] for g in grads] if want_dsm else None
    metrics = _assemble(stats, g_ism, g_dsm, loss, noisy)
    return StepTerms(metrics, g_ism if loss == "ism" else g_dsm)


def _chunk_terms(kernel: Kernel, z: Tensor, e: Tensor | None, sigma: float, stats: dict[str, Moments],
                 want_ism: bool, want_dsm: bool) -> tuple:
    """Forward one chunk, add its per-point terms to `stats`, return the forward and the s-cotangents."""
    fwd = kernel.forward(z)
    s = fwd.s.detach()
    s64 = s.double()
    stats["norm"].add(0.5 * (s64 * s64).sum(0))
    stats["fit_ism"].add(fwd.div.detach())
    cotangents = [s] if want_ism else []  # d(0.5|s|^2)/ds; the div part is added by the kernel
    if e is not None:
        e64 = e.double()
        residual = s64 + e64 / sigma
        stats["fit_dsm"].add((s64 * e64).sum(0) / sigma)
        stats["const_dsm"].add(0.5 * (e64 * e64).sum(0) / sigma**2)
        stats["loss_dsm"].add(0.5 * (residual * residual).sum(0))
        if want_dsm:
            cotangents.append(s + e / sigma)  # d(0.5|s + eps/sigma|^2)/ds = d(DSM-S)/ds
    return fwd, torch.stack(cotangents)


def _assemble(stats: dict[str, Moments], g_ism: list[Tensor] | None, g_dsm: list[Tensor] | None,
              loss: str, noisy: bool) -> Tensor:
    """The METRICS vector from the accumulated moments and the two gradients."""
    nan = torch.full((), math.nan, dtype=torch.float64, device=stats["norm"].mean().device)
    norm, fit_ism = stats["norm"].mean(), stats["fit_ism"].mean()
    fit_dsm = stats["fit_dsm"].mean() if noisy else nan
    values = {
        "norm": norm,
        "fit_ism": fit_ism,
        "fit_dsm": fit_dsm,
        "const_dsm": stats["const_dsm"].mean() if noisy else nan,
        "loss_ism": norm + fit_ism,
        "loss_dsm_s": norm + fit_dsm,
        "loss_dsm": stats["loss_dsm"].mean() if noisy else nan,
        "fit_ism_se": stats["fit_ism"].standard_error(),
        "fit_dsm_se": stats["fit_dsm"].standard_error() if noisy else nan,
    }
    flat_ism = _flatten(g_ism)
    flat_dsm = _flatten(g_dsm)
    values["grad_norm_ism"] = flat_ism.norm() if flat_ism is not None else nan
    values["grad_norm_dsm"] = flat_dsm.norm() if flat_dsm is not None else nan
    both = flat_ism is not None and flat_dsm is not None
    values["grad_cos"] = (flat_ism @ flat_dsm / (values["grad_norm_ism"] * values["grad_norm_dsm"])
                          if both else nan)
    values["loss"] = values[{"ism": "loss_ism", "dsm": "loss_dsm", "dsm_s": "loss_dsm_s"}[loss]]
    return torch.stack([values[name] for name in METRICS])


def _flatten(grads: list[Tensor] | None) -> Tensor | None:
    return None if grads is None else torch.cat([g.reshape(-1) for g in grads]).double()
