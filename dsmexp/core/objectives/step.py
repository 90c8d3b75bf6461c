"""step_terms: the one function that computes a step's terms (README, What a run computes;
docs/architecture.md, How a step flows), on one shared batch z = x + sigma * eps.

One forward pass per chunk of points serves every exact term (the norm, both fitting terms, DSM's
constant) and one reverse pass per chunk stacks the ISM and DSM cotangents; an estimator's term function
(registry row `terms`) runs on the same z. Metric sums are kept in float64 (terms.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsmexp.core.kernels.base import Kernel
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.terms import EstimatorSums, StepSums, StepTerms, assemble

CPU_CHUNK = 16384  # points per chunk on CPU, the fastest in dsmexp-bench on 2 cores (8k-32k are close)
CUDA_CHUNK = 1 << 20


def step_terms(kernel: Kernel, x: Tensor, eps: Tensor | None, sigma: float, loss: str,
               diagnostics: bool = True, chunk_size: int = 16384, v: Tensor | None = None,
               fd_eps: float = 0.1, trained_only: bool = False) -> StepTerms:
    """All section-4 and section-10 terms at data x (N, d) and noise eps (M, N, d), and the gradient of
    `loss`.

    With diagnostics=False only the trained objective is differentiated (the other gradients' norms
    and cosines are NaN); every other column is still computed. trained_only=True computes the trained
    objective alone (every other column NaN). sigma = 0 uses z = x and no noise. eps drawn
    feature-major (a (d, M, N) tensor permuted to (M, N, d)) is used without a copy. The estimators
    (ssm, ssm_vr, fd_ssm) take projections v (K, d, M*N) (point index as in z) and log their own terms
    (*_est) next to the exact ISM terms on the same z; their gradient is compared with the exact ISM one.
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
    row = objective(loss)
    estimator = row.estimator
    others = not trained_only
    ism_values = row.trains == "ism" or others
    dsm_values = noisy and (row.trains == "dsm" or others)
    want_ism = row.trains == "ism" or (diagnostics and others)
    want_dsm = noisy and (row.trains == "dsm" or (diagnostics and others))
    exact = ism_values or dsm_values
    sums = StepSums(sigma, ism_values, dsm_values)
    est_sums = EstimatorSums() if estimator else None
    grads: list[Tensor] | None = None
    g_est: list[Tensor] | None = None
    points = z.shape[1]
    for start in range(0, points, chunk_size):
        chunk = slice(start, start + chunk_size)
        if exact:
            fwd = kernel.forward(z[:, chunk], with_div=ism_values)
            s = fwd.s.detach()
            sums.add(s, fwd.div.detach() if ism_values else None, e[:, chunk] if noisy else None)
            cotangents = [s] if want_ism else []  # d(0.5|s|^2)/ds; the div part is added by the kernel
            if want_dsm:
                cotangents.append(torch.add(s, e[:, chunk], alpha=1 / sigma))  # d(DSM-S)/ds = d(DSM)/ds
            if cotangents:
                g = kernel.backward(fwd, torch.stack(cotangents), 0 if want_ism else None)
                grads = g if grads is None else [a.add_(b) for a, b in zip(grads, g)]
        if estimator:  # K (fd_ssm: 2K) points per point: sub-chunks keep memory at chunk_size points
            step = max(1, chunk_size // (v.shape[0] * row.points_per_projection))
            end = min(start + chunk_size, points)
            for sub in range(start, end, step):
                piece = slice(sub, min(sub + step, end))
                part = row.terms(kernel, z[:, piece], v[:, :, piece], fd_eps)
                est_sums.add(part)
                g_est = part.grad if g_est is None else [a.add_(b) for a, b in zip(g_est, part.grad)]
    if grads is not None:
        grads = [g / points for g in grads]
    g_ism = [g[0] for g in grads] if want_ism else None
    g_dsm = [g[-1] for g in grads] if want_dsm else None
    if g_est is not None:
        g_est = [g / points for g in g_est]
    metrics = assemble(sums if exact else None, est_sums, g_ism, g_dsm, g_est, loss, z.new_zeros(()))
    trained = {"ism": g_ism, "dsm": g_dsm, "est": g_est}[row.trains]
    return StepTerms(metrics, trained)
