"""multiscale_terms: a step's terms for a noise-conditional model trained across a schedule (seed 003,
multi-scale DSM), overall and per noise level, on one shared batch z_p = x_{p mod N} + sigma_p eps_p.

It is step.step_terms for a model s(z, sigma) whose points each carry their own sigma and weight
lambda(sigma_p) (schedules.py). Per point, on the same z, it computes what the paper compares at one
sigma: the norm 0.5 |s|^2, ISM's fitting term div s (Eq. 8) and DSM's <s, eps>/sigma (Eq. 9), DSM's
constant |eps|^2 / (2 sigma^2) and its residual 0.5 |s + eps/sigma|^2 (Eq. 7). Then:

- the METRICS vector of metrics.csv, every term a lambda-weighted mean over the batch, so loss_ism =
  norm + fit_ism and loss_dsm_s = norm + fit_dsm hold as at one sigma; the trained loss is the
  lambda-weighted mean of the trained objective (for sigma2 weighting and DSM, the NCSN loss);
- per level (L rows, LEVEL_TERMS): the number of points, the unweighted means of the norm and both
  fitting terms with their standard errors, and the trained objective's mean: Prop. 2 (fit_ism =
  fit_dsm in expectation) holds at every level;
- the trained gradient. hybrid trains ISM's fitting term below loss.switch_sigma and DSM's above (its
  value and gradient are the *_est columns, an unbiased estimate of ISM's by Prop. 2); ssm_vr replaces
  div s by v^T J v (estimators.py) with the same weights;
- the gradient's variance over the noise (grad_var, grad_var_ism; gradvar.py) from the chunks' own
  gradient sums: chunks lie inside groups of whole noise rows, independent given the data.

Sums are float64. A new multi-scale objective is its registry row (multiscale=True) and its per-point
value and cotangent below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dsmexp.core.kernels.conditional import ConditionalKernel
from dsmexp.core.objectives.gradvar import GradientGroups
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.terms import metrics_vector

LEVEL_TERMS = ("count", "norm", "fit_ism", "fit_dsm", "fit_ism_se", "fit_dsm_se", "loss")
# per-level sums: count, norm, div, div^2, fit_dsm, fit_dsm^2, trained value
_LEVEL_SUMS = 7
# overall lambda-weighted sums: norm, fit_ism, fit_ism^2, fit_dsm, fit_dsm^2, const, loss_dsm,
# fit_est, fit_est^2, trained value
_SUMS = 10


@dataclass
class MultiscaleTerms:
    metrics: Tensor  # METRICS, float64
    levels: Tensor  # (L, len(LEVEL_TERMS)) float64
    grad: list[Tensor]  # the trained objective's gradient


def multiscale_terms(kernel: ConditionalKernel, x: Tensor, eps: Tensor, sigma: Tensor, level: Tensor,
                     weight: Tensor, levels: int, loss: str, switch_sigma: float | None = None,
                     diagnostics: bool = True, chunk_size: int = 16384, v: Tensor | None = None,
                     trained_only: bool = False, draws: int | None = None) -> MultiscaleTerms:
    """Terms at data x (N, d), noise eps (d, P) feature-major, and per point p its sigma (P,), level
    (P,) and weight lambda (P,) (P a multiple of N; point p noises x[p % N]); v (K, d, P) for ssm_vr."""
    row = objective(loss)
    points = eps.shape[1]
    kernel.prepare()
    z = torch.addcmul(x.T.repeat(1, points // x.shape[0]), eps, sigma.to(eps.dtype)[None])
    others = not trained_only
    want_ism = row.name == "ism" or (diagnostics and others)
    want_dsm = row.trains == "dsm" or (diagnostics and others)
    want_div = others or row.name in ("ism", "hybrid")
    # gradient-variance groups (gradvar.py): noise row m holds the points with (p % draws) // N = m (at
    # every level with sampling=all), independent given the data; a group is the rows whose points fit
    # in a chunk. Points are laid out group by group (hybrid: the points below the switch first, as only
    # they need the divergence), and each chunk lies inside one group.
    n = x.shape[0]
    draws = draws or points
    rows, per_draw = draws // n, points // draws
    rows_per_group = max(chunk_size // (n * per_draw), 1)
    n_groups = -(-rows // rows_per_group)
    sizes = [min(rows_per_group, rows - c * rows_per_group) * n * per_draw for c in range(n_groups)]
    if row.name == "hybrid" or (per_draw > 1 and n_groups > 1):
        group = (torch.arange(points, device=x.device) % draws) // n // rows_per_group
        if row.name == "hybrid":
            group = group + (sigma >= switch_sigma).to(group.dtype) * n_groups
            sizes = torch.bincount(group, minlength=2 * n_groups).tolist()
        order = torch.argsort(group, stable=True)
        z, eps, sigma, level, weight = z[:, order], eps[:, order], sigma[order], level[order], weight[order]
        v = v[:, :, order] if v is not None else None
    chunks, begin = [], 0
    for key, size in enumerate(sizes):
        with_div = want_div if row.name != "hybrid" else (key < n_groups or others)
        chunks += [(slice(c, min(c + chunk_size, begin + size)), with_div, key % n_groups)
                   for c in range(begin, begin + size, chunk_size)]
        begin += size
    sums = torch.zeros(_SUMS, dtype=torch.float64, device=x.device)
    per_level = torch.zeros(levels, _LEVEL_SUMS, dtype=torch.float64, device=x.device)
    grads: dict[str, list[Tensor]] = {}
    groups: dict[str, GradientGroups] = {}
    for chunk, with_div, chunk_group in chunks:
        z_c, e_c, sig_c, lam_c = z[:, chunk], eps[:, chunk], sigma[chunk], weight[chunk]
        fwd = kernel.forward(z_c, sig_c, with_div=with_div)
        s = fwd.s.detach()
        s64, e64, sig64 = s.double(), e_c.double(), sig_c.double()
        norm = 0.5 * (s64 * s64).sum(0)
        div = fwd.div.detach().double() if with_div else torch.full_like(norm, math.nan)
        fit_dsm = (s64 * e64).sum(0) / sig64
        const = 0.5 * (e64 * e64).sum(0) / (sig64 * sig64)
        residual = s64 + e64 / sig64
        loss_dsm = 0.5 * (residual * residual).sum(0)
        small = sig64 < switch_sigma if row.name == "hybrid" else None
        fit_est = torch.full_like(norm, math.nan)
        if row.name == "hybrid":
            fit_est = torch.where(small, div, fit_dsm)
        elif row.terms is not None:
            fit_est, g = _sliced(kernel, z_c, sig_c, v[:, :, chunk], lam_c)
            _accumulate(grads, groups, "est", g, chunk_group, e_c.shape[1])
        trained = {"ism": norm + div, "dsm": loss_dsm, "dsm_s": norm + fit_dsm}.get(row.name, norm + fit_est)
        weighted = lam_c * torch.stack([norm, div, div * div * lam_c, fit_dsm, fit_dsm * fit_dsm * lam_c,
                                        const, loss_dsm, fit_est, fit_est * fit_est * lam_c, trained])
        sums += weighted.sum(1)
        per_level.index_add_(0, level[chunk], torch.stack(
            [torch.ones_like(norm), norm, div, div * div, fit_dsm, fit_dsm * fit_dsm, trained], 1))
        cotangents, div_rows, names = [], [], []
        lam = lam_c.to(s.dtype)
        if want_ism:
            cotangents.append(lam * s)
            div_rows.append(lam)
            names.append("ism")
        if want_dsm:
            cotangents.append(lam * (s + e_c / sig_c.to(s.dtype)))
            div_rows.append(None)
            names.append("dsm")
        if row.name == "hybrid":
            large = (~small).to(s.dtype)
            cotangents.append(lam * (s + large * e_c / sig_c.to(s.dtype)))
            div_rows.append(lam * small.to(s.dtype))
            names.append("est")
        if cotangents:
            g = kernel.backward(fwd, torch.stack(cotangents), div_rows if with_div else None)
            for r, name in enumerate(names):
                _accumulate(grads, groups, name, [t[r] for t in g], chunk_group, e_c.shape[1])
    grads = {k: [t / points for t in g] for k, g in grads.items()}
    variances = {name: groups[name].variance(x) for name in {"ism", row.trains} & set(groups)}
    metrics = _metrics(sums / points, sums, points, row, grads, variances, x)
    return MultiscaleTerms(metrics, _level_table(per_level), grads[row.trains])


def _sliced(kernel: ConditionalKernel, z: Tensor, sigma: Tensor, v: Tensor, lam: Tensor):
    """Per-point v^T J v averaged over the K projections, and the gradient of sum lambda (0.5 |s|^2 +
    v^T J v) (SSM-VR, estimators.py) on this chunk."""
    s, jv = kernel.directional(z, sigma, v)
    fit = (v * jv).sum(1).mean(0)  # (n,)
    value = (lam.to(s.dtype) * (0.5 * (s * s).sum(0) + fit)).sum()
    grad = torch.autograd.grad(value, kernel.parameters(), allow_unused=True, materialize_grads=True)
    return fit.detach().double(), list(grad)


def _accumulate(grads: dict[str, list[Tensor]], groups: dict[str, GradientGroups], name: str,
                g: list[Tensor], group: int, points: int) -> None:
    """Add a chunk's gradient sum (over `points` points, each weighted by its lambda) to the step's and
    to its group's."""
    groups.setdefault(name, GradientGroups()).add(g, points, group)
    grads[name] = list(g) if name not in grads else [a.add_(b) for a, b in zip(grads[name], g)]


def _metrics(mean: Tensor, sums: Tensor, points: int, row, grads: dict, variances: dict,
             like: Tensor) -> Tensor:
    """METRICS from the lambda-weighted means (standard errors of the weighted per-point values)."""
    def se(first: int) -> Tensor:
        var = (sums[first + 1] - sums[first] ** 2 / points) / max(points - 1, 1)
        return var.clamp_min(0).sqrt() / math.sqrt(points)

    norm, fit_ism, fit_dsm, fit_est = mean[0], mean[1], mean[3], mean[7]
    values = {"norm": norm, "fit_ism": fit_ism, "fit_dsm": fit_dsm, "const_dsm": mean[5],
              "loss_dsm": mean[6], "fit_ism_se": se(1), "fit_dsm_se": se(3), "loss_ism": norm + fit_ism,
              "loss_dsm_s": norm + fit_dsm}
    if row.trains == "est":
        values |= {"norm_est": norm, "fit_est": fit_est, "fit_est_se": se(7), "loss_est": norm + fit_est}
    values["trained"] = mean[9]
    for name, (value, se) in variances.items():
        if name == row.trains:
            values |= {"grad_var": value, "grad_var_se": se}
        if name == "ism":
            values |= {"grad_var_ism": value, "grad_var_ism_se": se}
    return metrics_vector(values, grads.get("ism"), grads.get("dsm"), grads.get("est"), "trained", like)


def _level_table(per_level: Tensor) -> Tensor:
    """(L, LEVEL_TERMS) from the per-level sums: means and standard errors (NaN for an empty level)."""
    count = per_level[:, 0]
    n = count.clamp_min(1)
    mean = per_level[:, 1:] / n[:, None]

    def se(total: Tensor, squares: Tensor) -> Tensor:
        var = (squares - total * total / n) / (n - 1).clamp_min(1)
        return var.clamp_min(0).sqrt() / n.sqrt()

    table = torch.stack([count, mean[:, 0], mean[:, 1], mean[:, 3], se(per_level[:, 2], per_level[:, 3]),
                         se(per_level[:, 4], per_level[:, 5]), mean[:, 5]], 1)
    table[count == 0, 1:] = math.nan
    return table
