"""step_terms: the one function that computes a step's terms (README, What a run computes;
docs/architecture.md, How a step flows), on one shared batch z = x + sigma * eps.

One forward pass per chunk of points serves every exact term (the norm, both fitting terms, DSM's
constant) and one reverse pass per chunk stacks the ISM, DSM and (for a denoising variant, targets.py)
the variant's cotangents; an estimator's term function (registry row `terms`) runs on the same z. Chunks
fall inside groups of whole noise rows, whose separate gradient sums give the gradient's variance
(gradvar.py) without another pass. Metric sums are kept in float64 (terms.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsmexp.core.kernels.base import Kernel
from dsmexp.core.noise import GAUSSIAN, NoiseKernel
from dsmexp.core.objectives.gradvar import GradientGroups
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.targets import control_variate
from dsmexp.core.objectives.terms import EstimatorSums, Moments, StepSums, StepTerms, assemble

CPU_CHUNK = 16384  # points per chunk on CPU, the fastest in dsmexp-bench on 2 cores (8k-32k are close)
CUDA_CHUNK = 1 << 20


def group_points(n: int, chunk_size: int, noisy: bool, pair: bool = False) -> int:
    """Points per gradient-variance group: the whole noise rows (n points each) that fit in a chunk, at
    least one (two with antithetic pairs, which must stay together)."""
    if not noisy:
        return n
    rows = max(chunk_size // n, 1)
    if pair and rows % 2:
        rows = rows + 1 if rows == 1 else rows - 1
    return rows * n


def step_terms(kernel: Kernel, x: Tensor, eps: Tensor | None, sigma: float, loss: str,
               diagnostics: bool = True, chunk_size: int = 16384, v: Tensor | None = None,
               fd_eps: float = 0.1, trained_only: bool = False, clean_score: Tensor | None = None,
               kappa: float = 0.0, antithetic: bool = False, noise: NoiseKernel = GAUSSIAN) -> StepTerms:
    """All section-4 and section-10 terms at data x (N, d) and noise eps (M, N, d), and the gradient of
    `loss`.

    With diagnostics=False only the trained objective is differentiated (the other gradients' norms
    and cosines are NaN); every other column is still computed. trained_only=True computes the trained
    objective alone (every other column NaN). sigma = 0 uses z = x and no noise. eps drawn
    feature-major (a (d, M, N) tensor permuted to (M, N, d)) is used without a copy. The estimators
    (ssm, ssm_vr, fd_ssm) take projections v (K, d, M*N) (point index as in z) and log their own terms
    (*_est) next to the exact ISM terms on the same z; their gradient is compared with the exact ISM one.
    The denoising variants (dsm_cv, tsm, tsm_mix) log theirs in *_vr; tsm and tsm_mix take
    clean_score (N, d), grad log p_data at x, and tsm_mix its kappa. antithetic: eps holds (eps, -eps)
    pairs of rows (the gradient-variance groups keep pairs whole). noise: the kernel eps was drawn from
    (noise.py); DSM's target is its grad_z log q(z | x), -eps / sigma for the Gaussian.
    """
    noisy = sigma > 0
    n, dim = x.shape[0], x.shape[1]
    kernel.prepare()
    if noisy:
        e_fm = eps.permute(2, 0, 1)  # (d, M, N)
        z = torch.add(x.T[:, None, :], e_fm, alpha=sigma).reshape(dim, -1)  # (d, P)
        e = e_fm.reshape(dim, -1)
    else:
        z, e = x.T.contiguous(), None
    row = objective(loss)
    estimator, variant = row.estimator, row.trains == "vr"
    others = not trained_only
    ism_values = row.trains == "ism" or others
    dsm_values = noisy and (row.trains == "dsm" or others)
    want_ism = row.trains == "ism" or (diagnostics and others)
    want_dsm = noisy and (row.trains == "dsm" or (diagnostics and others))
    exact = ism_values or dsm_values or variant
    sums = StepSums(sigma, ism_values, dsm_values)
    est_sums = EstimatorSums() if estimator else None
    vr_sums = Moments() if variant else None
    clean = clean_score.T.contiguous() if clean_score is not None else None  # (d, N)
    x_fm = x.T.contiguous() if row.control else None
    names = [name for name, on in (("ism", want_ism), ("dsm", want_dsm), ("vr", variant)) if on]
    totals: dict[str, list[Tensor]] = {}
    groups = {name: GradientGroups() for name in {*names, row.trains}}
    points = z.shape[1]
    per_group = group_points(n, chunk_size, noisy, antithetic)
    for group_start in range(0, points, per_group):
        group_end = min(group_start + per_group, points)
        for start in range(group_start, group_end, chunk_size):
            chunk = slice(start, min(start + chunk_size, group_end))
            count = chunk.stop - chunk.start
            chunk_grads: dict[str, list[Tensor]] = {}
            if exact:
                fwd = kernel.forward(z[:, chunk], with_div=ism_values)
                s = fwd.s.detach()
                other_kernel = noisy and not noise.gaussian and (dsm_values or want_dsm)
                dsm_target = noise.target(e[:, chunk], sigma) if other_kernel else None
                if ism_values or dsm_values:
                    sums.add(s, fwd.div.detach() if ism_values else None, e[:, chunk] if noisy else None,
                             dsm_target)
                cotangents = [s] if want_ism else []  # d(0.5|s|^2)/ds; the div part is added by the kernel
                if want_dsm and dsm_target is not None:  # d(DSM-S)/ds = s - grad_z log q(z | x)
                    cotangents.append(s - dsm_target)
                elif want_dsm:
                    cotangents.append(torch.add(s, e[:, chunk], alpha=1 / sigma))  # d(DSM-S)/ds = d(DSM)/ds
                if variant:
                    index = torch.arange(chunk.start, chunk.stop, device=z.device) % n
                    target = row.target(e[:, chunk], sigma, clean[:, index] if clean is not None else None,
                                        kappa)
                    fit = -(s * target).sum(0)
                    cotangents.append(s - target)
                if cotangents:
                    g = kernel.backward(fwd, torch.stack(cotangents), 0 if want_ism else None)
                    for k, name in enumerate(names):
                        chunk_grads[name] = [t[k] for t in g]
                if variant and row.control:  # - <s(x), eps> / sigma, at each point's clean x
                    clean_fwd = kernel.forward(x_fm, with_div=False)
                    fit = fit + control_variate(clean_fwd.s.detach()[:, index], e[:, chunk], sigma)
                    bar = torch.zeros_like(x_fm).index_add_(1, index, e[:, chunk]).div_(-sigma)
                    g_x = kernel.backward(clean_fwd, bar[None], None)
                    chunk_grads["vr"] = [a + b[0] for a, b in zip(chunk_grads["vr"], g_x)]
                if variant:  # per point: the norm 0.5 |s|^2 and the fitting term -<s, t>
                    vr_sums.add(torch.stack([0.5 * (s * s).sum(0), fit]))
            if estimator:  # K (fd_ssm: 2K) points per point: sub-chunks keep memory at chunk_size points
                step = max(1, chunk_size // (v.shape[0] * row.points_per_projection))
                for sub in range(chunk.start, chunk.stop, step):
                    piece = slice(sub, min(sub + step, chunk.stop))
                    part = row.terms(kernel, z[:, piece], v[:, :, piece], fd_eps)
                    est_sums.add(part)
                    chunk_grads["est"] = (part.grad if "est" not in chunk_grads
                                          else [a + b for a, b in zip(chunk_grads["est"], part.grad)])
            for name, grads in chunk_grads.items():
                groups[name].add(grads, count)
                totals[name] = (grads if name not in totals
                                else [a.add_(b) for a, b in zip(totals[name], grads)])
        for group in groups.values():
            group.close()
    means = {name: [g / points for g in grads] for name, grads in totals.items()}
    like = z.new_zeros(())
    variances = {name: groups[name].variance(like) for name in {"ism", row.trains} & set(groups)}
    metrics = assemble(sums if ism_values or dsm_values else None, est_sums, means.get("ism"),
                       means.get("dsm"), means.get("est"), loss, like, vr_sums, means.get("vr"), variances)
    return StepTerms(metrics, means[row.trains])
