"""The per-step terms as numbers: the METRICS columns of metrics.csv, the float64 sums they are means and
standard errors of, and the one function (assemble) that turns a step's sums and gradients into the
METRICS vector (README, What a run computes; docs/architecture.md, How a step flows).

ISM (Eq. 8) = norm + fit_ism and DSM-S (Eq. 9) = norm + fit_dsm share the norm 0.5 |s(z)|^2; their
fitting terms, mean div s(z) and mean <s(z), eps>/sigma, agree in expectation (Prop. 2, Eq. 10).
DSM (Eq. 7) adds the constant const_dsm = mean |eps|^2 / (2 sigma^2) and has the same gradient as DSM-S.
The estimators of ISM (estimators.py) add their own terms (*_est), with the cosine of their gradient
with the exact ISM gradient; the denoising variants (targets.py) theirs (*_vr). Every objective's trained
gradient and the exact ISM gradient have their variance (gradvar.py): grad_var and grad_var_ism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.core.objectives.estimators import EstimatorChunk
from dsmexp.core.objectives.registry import objective

METRICS = ("loss", "norm", "fit_ism", "fit_dsm", "const_dsm", "loss_ism", "loss_dsm_s", "loss_dsm",
           "fit_ism_se", "fit_dsm_se", "grad_norm_ism", "grad_norm_dsm", "grad_cos",
           "norm_est", "fit_est", "fit_est_se", "loss_est", "grad_norm_est", "grad_cos_est",
           "fit_vr", "fit_vr_se", "loss_vr", "grad_norm_vr", "grad_var", "grad_var_se", "grad_var_ism",
           "grad_var_ism_se")


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
    """Float64 sums over one step's points: enough for every mean and standard error of section 4.

    `ism` and `dsm` say which fitting terms are summed (both by default; one of them when only the
    trained objective is computed)."""

    def __init__(self, sigma: float, ism: bool = True, dsm: bool = True) -> None:
        self.sigma, self.count = sigma, 0
        self.rows = [name for name, on in (("fit_ism", ism), ("fit_dsm", dsm and sigma > 0)) if on]
        self.fits = Moments()  # per-point div s and/or <s, eps>/sigma, one row each
        self.squares: Tensor | float = 0.0  # sum |s|^2, sum |eps|^2, sum |s + eps/sigma|^2

    def add(self, s: Tensor, div: Tensor | None, e: Tensor | None, target: Tensor | None = None) -> None:
        """A chunk's score s (d, B), div s (B,) or None, and its noise e (d, B) (Gaussian kernel: the target
        is -e / sigma) or the kernel's denoising target grad_z log q(z | x) (d, B) (noise.py)."""
        s64 = _float64(s)
        self.count += s.shape[1]
        if (e is None and target is None) or "fit_dsm" not in self.rows:
            self.fits.add(div[None])
            self.squares = self.squares + _square(s64)[None]
            return
        if target is not None:  # another kernel: fit_dsm = -<s, t>, const_dsm = 0.5 |t|^2 (kept x sigma^2)
            t64 = _float64(target)
            residual, dsm_fit, e64 = s64 - t64, -(s64 * t64).sum(0), t64 * self.sigma
        else:
            e64 = _float64(e)
            residual = torch.add(s64, e64, alpha=1 / self.sigma)
            dsm_fit = (s64 * e64).sum(0) / self.sigma
        self.fits.add(torch.stack([div.double(), dsm_fit] if "fit_ism" in self.rows else [dsm_fit]))
        self.squares = self.squares + torch.stack([_square(s64), _square(e64), _square(residual)])

    def means(self) -> dict[str, Tensor]:
        """Means of norm, the fitting terms summed and, with noise, const_dsm and loss_dsm."""
        half_mean = 0.5 * self.squares / self.count
        out = {"norm": half_mean[0]} | dict(zip(self.rows, self.fits.mean()))
        if len(half_mean) > 1:
            out |= {"const_dsm": half_mean[1] / self.sigma**2, "loss_dsm": half_mean[2]}
        return out

    def standard_errors(self) -> dict[str, Tensor]:
        return {f"{name}_se": se for name, se in zip(self.rows, self.fits.standard_error())}


class EstimatorSums:
    """Float64 sums of an estimator's per-value norm and fitting terms (M*N*K values)."""

    def __init__(self) -> None:
        self.fit = Moments()
        self.norm_sum: Tensor | float = 0.0
        self.norm_count = 0

    def add(self, chunk: EstimatorChunk) -> None:
        self.fit.add(chunk.fit.reshape(1, -1))
        self.norm_sum = self.norm_sum + chunk.norm.double().sum()
        self.norm_count += chunk.norm.numel()

    def means(self) -> dict[str, Tensor]:
        norm, fit = self.norm_sum / self.norm_count, self.fit.mean()[0]
        return {"norm_est": norm, "fit_est": fit, "fit_est_se": self.fit.standard_error()[0],
                "loss_est": norm + fit}


def _float64(t: Tensor) -> Tensor:
    """A contiguous float64 copy (chunks are column slices, so their rows are not adjacent)."""
    return t.to(torch.float64, memory_format=torch.contiguous_format).contiguous()


def _square(t: Tensor) -> Tensor:
    return torch.dot(t.view(-1), t.view(-1))


def assemble(sums: StepSums | None, est_sums: EstimatorSums | None, g_ism: list[Tensor] | None,
              g_dsm: list[Tensor] | None, g_est: list[Tensor] | None, loss: str, like: Tensor,
              vr_sums: Moments | None = None, g_vr: list[Tensor] | None = None,
              variances: dict[str, tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """The METRICS vector from the step's sums and gradients (NaN for whatever was not computed).

    vr_sums: a denoising variant's per-point (norm, fitting term) moments; variances: {"ism" or the
    trained gradient's name: (grad_var, its standard error)}."""
    values = {}
    if sums is not None:
        nan = torch.full((), math.nan, dtype=torch.float64, device=like.device)
        means = sums.means() | sums.standard_errors()
        norm = means["norm"]
        values = {key: means.get(key, nan) for key in ("norm", "fit_ism", "fit_dsm", "const_dsm", "loss_dsm",
                                                        "fit_ism_se", "fit_dsm_se")}
        values["loss_ism"] = norm + values["fit_ism"]
        values["loss_dsm_s"] = norm + values["fit_dsm"]
    if est_sums is not None:
        values |= est_sums.means()
    if vr_sums is not None:
        norm, fit = vr_sums.mean()
        values |= {"fit_vr": fit, "fit_vr_se": vr_sums.standard_error()[1], "loss_vr": norm + fit}
    trains = objective(loss).trains
    for name, (value, se) in (variances or {}).items():
        if name == trains:
            values |= {"grad_var": value, "grad_var_se": se}
        if name == "ism":
            values |= {"grad_var_ism": value, "grad_var_ism_se": se}
    return metrics_vector(values, g_ism, g_dsm, g_est, objective(loss).loss_column, like, g_vr)


def metrics_vector(values: dict[str, Tensor], g_ism: list[Tensor] | None, g_dsm: list[Tensor] | None,
                   g_est: list[Tensor] | None, loss_column: str, like: Tensor,
                   g_vr: list[Tensor] | None = None) -> Tensor:
    """METRICS in order from the step's values, its gradients' norms and cosines, and `loss` (the value
    of loss_column); NaN for whatever was not computed."""
    nan = torch.full((), math.nan, dtype=torch.float64, device=like.device)
    values = dict(values)
    flat = {name: _flatten(g) for name, g in (("ism", g_ism), ("dsm", g_dsm), ("est", g_est), ("vr", g_vr))}
    for name, f in flat.items():
        values[f"grad_norm_{name}"] = f.norm() if f is not None else nan
    values["grad_cos"] = _cosine(flat["ism"], flat["dsm"], nan)
    values["grad_cos_est"] = _cosine(flat["est"], flat["ism"], nan)
    values["loss"] = values.get(loss_column, nan)
    return torch.stack([values.get(name, nan) for name in METRICS])


def _cosine(a: Tensor | None, b: Tensor | None, nan: Tensor) -> Tensor:
    return a @ b / (a.norm() * b.norm()) if a is not None and b is not None else nan


def _flatten(grads: list[Tensor] | None) -> Tensor | None:
    return None if grads is None else torch.cat([g.reshape(-1) for g in grads]).double()
