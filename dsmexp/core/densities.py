"""The numerics behind the exact reference scores (reference.py, datasets.py): log q and its gradient for
mixtures of isotropic Gaussians by log-sum-exp (mixture_density for one shared variance, gmm_density for
one per component), and the composite Gauss-Legendre nodes that turn a blurred curve into such a mixture
(curve_nodes: GL_NODES per panel, PANELS_PER_WIDTH panels per kernel width of arc length). float64
throughout; z has shape (n, d), scores (n, d), log densities and divergences (n,).

The divergence of the score (the Laplacian of log q) comes with the same posterior: for
q = sum_k w_k N(mu_k, v_k I) with posterior pi_k(z) and g_k = (mu_k - z) / v_k, the score is
s = sum_k pi_k g_k and div s = Laplacian(q) / q - |s|^2 = sum_k pi_k (|g_k|^2 - d / v_k) - |s|^2.
"""

from __future__ import annotations

import math

import numpy as np
import torch

GL_NODES = 8
PANELS_PER_WIDTH = 2
MAX_NODES = 200_000  # quadrature nodes over all curves; below the matching kernel width we give up
BLOCK = 2_000_000  # points x nodes evaluated at once


class ReferenceUnavailable(ValueError):
    """The reference score does not exist (a singular distribution) or would need too many nodes."""


def curve_nodes(curves: tuple, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes c(t_k) and log weights for a mixture of uniform curve measures.

    Panels are short enough that every kernel width (in arc length) holds PANELS_PER_WIDTH of them.
    """
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(GL_NODES)
    panels = [math.ceil(PANELS_PER_WIDTH * (c.t1 - c.t0) * c.max_speed() / width) for c in curves]
    if GL_NODES * sum(panels) > MAX_NODES:
        raise ReferenceUnavailable(f"kernel width {width:.3g} is too small for {MAX_NODES} quadrature nodes")
    points, log_weights = [], []
    for curve, count in zip(curves, panels):
        half = (curve.t1 - curve.t0) / (2 * count)
        mids = curve.t0 + half * (2 * np.arange(count) + 1)
        t = (mids[:, None] + half * unit_nodes[None, :]).ravel()
        w = np.tile(half * unit_weights, count) / (curve.t1 - curve.t0)
        points.append(curve.points(t))
        log_weights.append(math.log(curve.weight) + np.log(w))
    return np.concatenate(points), np.concatenate(log_weights)


def mixture_density(z: np.ndarray, centres: np.ndarray, log_weights: np.ndarray,
                    var: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log q, grad log q and its divergence of sum_k w_k N(z; centres_k, var I), stable in log space
    (float64)."""
    zt, ct, lw = (torch.as_tensor(a, dtype=torch.float64) for a in (z, centres, log_weights))
    n, dim = zt.shape
    log_q, score = torch.empty(n, dtype=torch.float64), torch.empty(n, dim, dtype=torch.float64)
    div = torch.empty(n, dtype=torch.float64)
    centre_sq = (ct * ct).sum(1)
    step = max(1, BLOCK // len(ct))
    for start in range(0, n, step):
        block = zt[start:start + step]
        # |z - c|^2 by expansion: BLAS speed; the rounding (1e-16 of |z|^2) is far below var
        sq_dist = ((block * block).sum(1)[:, None] + centre_sq[None, :] - 2 * block @ ct.T).clamp_min_(0)
        logits = lw[None, :] - sq_dist / (2 * var)
        norm = torch.logsumexp(logits, dim=1)
        posterior = torch.exp(logits - norm[:, None])
        log_q[start:start + step] = norm - 0.5 * dim * math.log(2 * math.pi * var)
        s = (posterior @ ct - block) / var
        score[start:start + step] = s
        div[start:start + step] = (posterior * sq_dist).sum(1) / var**2 - dim / var - (s * s).sum(1)
    return log_q.numpy(), score.numpy(), div.numpy()


def gmm_density(z: np.ndarray, means: np.ndarray, log_weights: np.ndarray,
                variances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log q, grad log q and its divergence of sum_k w_k N(z; means_k, variances_k I), by log-sum-exp
    (float64).

    Squared distances are formed as differences, not by expansion: components may be far narrower
    than |z|^2 in high dimension.
    """
    zt, mt, lw, var = (torch.as_tensor(a, dtype=torch.float64) for a in (z, means, log_weights, variances))
    n, dim = zt.shape
    log_q, score = torch.empty(n, dtype=torch.float64), torch.empty(n, dim, dtype=torch.float64)
    div = torch.empty(n, dtype=torch.float64)
    step = max(1, BLOCK // (len(mt) * dim))
    log_norm = lw - 0.5 * dim * torch.log(2 * math.pi * var)
    for start in range(0, n, step):
        diff = mt[None, :, :] - zt[start:start + step, None, :]  # (b, K, d)
        sq_dist = (diff * diff).sum(-1)
        logits = log_norm[None, :] - sq_dist / (2 * var[None, :])
        norm = torch.logsumexp(logits, dim=1)
        posterior = torch.exp(logits - norm[:, None])
        log_q[start:start + step] = norm
        s = torch.einsum("bk,bkd->bd", posterior / var[None, :], diff)
        score[start:start + step] = s
        div[start:start + step] = ((posterior * (sq_dist / var[None, :]**2 - dim / var[None, :])).sum(1)
                                   - (s * s).sum(1))
    return log_q.numpy(), score.numpy(), div.numpy()


def diagonal_density(z: np.ndarray, means: np.ndarray, log_weights: np.ndarray,
                     variances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log q, grad log q and its divergence of sum_k w_k N(z; means_k, diag(variances_k)) (variances
    (K, d)), by log-sum-exp (float64); the divergence is sum_i [sum_k pi_k (g_ki^2 - 1 / v_ki)] - |s|^2
    with g_k = (m_k - z) / v_k."""
    zt, mt, lw, var = (torch.as_tensor(a, dtype=torch.float64) for a in (z, means, log_weights, variances))
    n, dim = zt.shape
    log_q, score = torch.empty(n, dtype=torch.float64), torch.empty(n, dim, dtype=torch.float64)
    div = torch.empty(n, dtype=torch.float64)
    step = max(1, BLOCK // (len(mt) * dim))
    inv = 1 / var
    log_norm = lw - 0.5 * torch.log(2 * math.pi * var).sum(1)
    for start in range(0, n, step):
        g = (mt[None, :, :] - zt[start:start + step, None, :]) * inv[None]  # (b, K, d)
        logits = log_norm[None, :] - 0.5 * (g * g * var[None]).sum(-1)
        norm = torch.logsumexp(logits, dim=1)
        posterior = torch.exp(logits - norm[:, None])
        s = torch.einsum("bk,bkd->bd", posterior, g)
        log_q[start:start + step] = norm
        score[start:start + step] = s
        div[start:start + step] = (torch.einsum("bk,bkd->b", posterior, g * g - inv[None])
                                   - (s * s).sum(1))
    return log_q.numpy(), score.numpy(), div.numpy()
