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
        """Add a chunk of values: one row per quantity, one column per point."""
        values = values.double()
        if self.shift is None:
            self.shift = values.mean(-1, keepdim=True)
        centred = values - self.shift
        self.sum1 = self.sum1 + centred.sum(-1)
        self.sum2 = self.sum2 + (centred * centred).sum(-1)
        self.count += values.shape[-1]

    def mean(self) -> Tensor:
        return self.shift.squeeze(-1) + self.sum1 / self.count

    def standard_error(self) -> Tensor:
        var = (self.sum2 - self.sum1 * self.sum1 / self.count) / max(self.count - 1, 1)
        return var.clamp_min(0).sqrt() / math.sqrt(self.count)


class StepSums:
    """Float64 sums over one step's points: enough for every mean and standard error of section 4."""

    def __init__(self, sigma: float) -> None:
        self.sigma, self.count = sigma, 0
        self.fits = Moments()  # per-point (div s, <s, eps>/sigma), as two rows
        self.squares: Tensor | float = 0.0  # sum |s|^2, sum |eps|^2, sum |s + eps/sigma|^2

    def add(self, s: Tensor, div: Tensor, e: Tensor | None) -> None:
        s64 = _float64(s)
        self.count += s.shape[1]
        if e is None:
            self.fits.add(div[None])
            self.squares = self.squares + _square(s64)[None]
            return
        e64 = _float64(e)
        residual = torch.add(s64, e64, alpha=1 / self.sigma)
        self.fits.add(torch.stack([div.double(), (s64 * e64).sum(0) / self.sigma]))
        self.squares = self.squares + torch.stack([_square(s64), _square(e64), _square(residual)])

    def means(self) -> dict[str, Tensor]:
        """Means of norm, fit_ism and, with noise, fit_dsm, const_dsm and loss_dsm."""
        half_mean = 0.5 * self.squares / self.count
        fits = self.fits.mean()
        out = {"norm": half_mean[0], "fit_ism": fits[0]}
        if len(half_mean) > 1:
            out |= {"fit_dsm": fits[1], "const_dsm": half_mean[1] / self.sigma**2, "loss_dsm": half_mean[2]}
        return out


def _float64(t: Tensor) -> Tensor:
    """A contiguous float64 copy (chunks are column slices, so their rows are not adjacent)."""
    return t.to(torch.float64, memory_format=torch.contiguous_format).contiguous()


def _square(t: Tensor) -> Tensor:
    return torch.dot(t.view(-1), t.view(-1))


def step_terms(kernel: Kernel, x: Tensor, eps: Tensor | None, sigma: float, loss: str,
               diagnostics: bool = True, chunk_size: int = 16384) -> StepTerms:
    """All section-4 terms at data x (N, d) and noise eps (M, N, d), and the gradient of `loss`.

    With diagnostics=False only the trained objective is differentiated (grad_norm of the other and
    grad_cos are NaN); every other column is still computed. sigma = 0 uses z = x and no noise.
    eps drawn feature-major (a (d, M, N) tensor permuted to (M, N, d)) is used without a copy.
    """
    noisy = sigma > 0
    dim = x.shape[1]
    kernel.prepare()
    if noisy:
        e_fm = eps.permute(2, 0, 1)  # (d, M, N)
        z = torch.add(x.T[:, None, :], e_fm, alpha=sigma).reshape(dim, -1)  # (d, P)
        e = e_fm.reshape(dim, -1)
    else:
        z, e = x.T.contiguous(), None
    want_ism = loss == "ism" or diagnostics
    want_dsm = noisy and (loss != "ism" or diagnostics)
    sums = StepSums(sigma)
    grads: list[Tensor] | None = None
    for start in range(0, z.shape[1], chunk_size):
        chunk = slice(start, start + chunk_size)
        fwd = kernel.forward(z[:, chunk])
        s = fwd.s.detach()
        sums.add(s, fwd.div.detach(), e[:, chunk] if noisy else None)
        cotangents = [s] if want_ism else []  # d(0.5|s|^2)/ds; the div part is added by the kernel
        if want_dsm:
            cotangents.append(torch.add(s, e[:, chunk], alpha=1 / sigma))  # d(DSM-S)/ds = d(DSM)/ds
        g = kernel.backward(fwd, torch.stack(cotangents), 0 if want_ism else None)
        grads = g if grads is None else [a.add_(b) for a, b in zip(grads, g)]
    grads = [g / sums.count for g in grads]
    g_ism = [g[0] for g in grads] if want_ism else None
    g_dsm = [g[-1] for g in grads] if want_dsm else None
    metrics = _assemble(sums, g_ism, g_dsm, loss, noisy)
    return StepTerms(metrics, g_ism if loss == "ism" else g_dsm)


def _assemble(sums: StepSums, g_ism: list[Tensor] | None, g_dsm: list[Tensor] | None,
              loss: str, noisy: bool) -> Tensor:
    """The METRICS vector from the step's sums and the two gradients."""
    means = sums.means()
    nan = torch.full((), math.nan, dtype=torch.float64, device=means["norm"].device)
    se = sums.fits.standard_error()
    norm, fit_ism, fit_dsm = means["norm"], means["fit_ism"], means.get("fit_dsm", nan)
    values = {
        "norm": norm,
        "fit_ism": fit_ism,
        "fit_dsm": fit_dsm,
        "const_dsm": means.get("const_dsm", nan),
        "loss_ism": norm + fit_ism,
        "loss_dsm_s": norm + fit_dsm,
        "loss_dsm": means.get("loss_dsm", nan),
        "fit_ism_se": se[0],
        "fit_dsm_se": se[1] if noisy else nan,
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
