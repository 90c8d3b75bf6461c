"""The exact density of the noised data under a non-Gaussian noise kernel (noise.py), q_sigma = p_data *
k_sigma, for data whose density is a mixture of Gaussians with diagonal covariances, N(m_k, diag(v_k))
with weights w_k (datasets.py, gaussian_parts: a blurred curve's quadrature nodes, a mixture's
components, a Gaussian in its eigenbasis). float64; z (n, d), scores (n, d), log densities and
divergences (n,).

- laplace (product kernel, scale b = sigma): each coordinate of a component convolves N(0, a^2) with
  Laplace(0, b), the normal-Laplace density, in closed form with the scaled complementary error function
  X(t) = exp(t^2) erfc(t): with B1 = (a^2 / b - u) / (a sqrt 2) and B2 = (a^2 / b + u) / (a sqrt 2),

      g(u) = exp(-u^2 / (2 a^2)) (X(B1) + X(B2)) / (4 b),
      g'(u) / g(u) = tanh((log X(B2) - log X(B1)) / 2) / b,
      g''(u) / g(u) = 1 / b^2 - 4 / (a b sqrt(2 pi) (X(B1) + X(B2)));

  (differentiating exp(A) erfc(B) the two Gaussian terms cancel), so the mixture's score and its
  divergence follow from the posterior over components as in densities.py.
- student_t (multivariate, df degrees of freedom, scale sigma): the kernel is the scale mixture
  N(0, sigma^2 / w I) over w ~ Gamma(df / 2, rate df / 2), so each component becomes
  int N(m_k, diag(v_k) + sigma^2 / w I) Gamma(dw), an integral over y = log w by composite Gauss-Legendre
  quadrature (scale_nodes: W_NODES per panel of width at most 1 / 2 and sqrt(1 / (2 df)) in y, from the
  Gamma's 1e-15 quantile, or lower where a point lies far in the kernel's tail, to its upper 1e-15
  quantile). An isotropic component depends on z through r^2 = |z - m|^2 alone: its profile log h(r^2)
  and two derivatives are computed at the nodes on a grid in log(r^2 + a^2) and interpolated (cubic);
  other components are expanded into a mixture of diagonal Gaussians (densities.diagonal_density).

Accuracy (tests/core/test_noise_kernels.py): log q within 1e-9 of adaptive quadrature of the defining
integrals; the interpolated profiles agree with the expanded mixture to ~1e-10 relative.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats

from dsmexp.core.densities import BLOCK, diagonal_density
from dsmexp.core.noise import NoiseKernel

W_NODES = 8
Y_PANEL = 0.5
TAIL = 1e-15


def noised_density(parts: tuple, z: np.ndarray, sigma: float,
                   kernel: NoiseKernel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log q_sigma, its score and the score's divergence at z for the mixture `parts` = (means (K, d),
    log_weights (K,), variances (K, d), rotation (d, d) or None: the mixture lives in z @ rotation)."""
    means, log_weights, variances, rotation = parts
    z = np.asarray(z, dtype=float)
    if rotation is not None:
        z = z @ rotation
    if kernel.kind == "laplace":
        log_q, score, div = laplace_mixture(z, means, log_weights, variances, sigma)
    elif kernel.kind == "student_t":
        log_q, score, div = student_t_mixture(z, means, log_weights, variances, sigma, kernel.df)
    else:
        raise ValueError(f"noised_density is for the non-Gaussian kernels, not {kernel.kind}")
    return log_q, (score @ rotation.T if rotation is not None else score), div


def _log_erfcx(t: torch.Tensor) -> torch.Tensor:
    """log(exp(t^2) erfc(t)) without overflow: erfc(t) lies in (1, 2] for t < 0."""
    negative = t < 0
    safe = torch.where(negative, torch.zeros_like(t), t)
    return torch.where(negative, t * t + torch.log(torch.erfc(t)), torch.log(torch.special.erfcx(safe)))


def laplace_mixture(z: np.ndarray, means: np.ndarray, log_weights: np.ndarray, variances: np.ndarray,
                    b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sum_k w_k prod_i (N(0, v_ki) * Laplace(0, b))(z_i - m_ki): log q, score and divergence."""
    zt, mt, lw, var = (torch.as_tensor(a, dtype=torch.float64) for a in (z, means, log_weights, variances))
    n, dim = zt.shape
    a = var.sqrt()  # (K, d)
    shift = var / b  # a^2 / b
    scale = a * math.sqrt(2)
    curvature = 4 / (a * b * math.sqrt(2 * math.pi))
    log_q, score = torch.empty(n, dtype=torch.float64), torch.empty(n, dim, dtype=torch.float64)
    div = torch.empty(n, dtype=torch.float64)
    step = max(1, BLOCK // (len(mt) * dim))
    for start in range(0, n, step):
        u = zt[start:start + step, None, :] - mt[None]  # (B, K, d)
        lx1, lx2 = _log_erfcx((shift - u) / scale), _log_erfcx((shift + u) / scale)
        lsum = torch.logaddexp(lx1, lx2)
        log_g = lsum - u * u / (2 * var) - math.log(4 * b)
        logits = lw[None, :] + log_g.sum(2)
        norm = torch.logsumexp(logits, 1)
        posterior = torch.exp(logits - norm[:, None])[:, :, None]  # (B, K, 1)
        s = (posterior * torch.tanh(0.5 * (lx2 - lx1))).sum(1) / b
        second = 1 / b**2 - curvature * torch.exp(-lsum)  # g'' / g per coordinate
        log_q[start:start + step] = norm
        score[start:start + step] = s
        div[start:start + step] = (posterior * second).sum((1, 2)) - (s * s).sum(1)
    return log_q.numpy(), score.numpy(), div.numpy()


def scale_nodes(df: float, w_low: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes w_j and log weights of int f(w) Gamma(w; df / 2, rate df / 2) dw, by composite Gauss-Legendre
    in y = log w from min(w_low, the 1e-15 quantile) to the upper 1e-15 quantile."""
    shape, scale = 0.5 * df, 2 / df
    lo = math.log(min(w_low, stats.gamma.ppf(TAIL, shape, scale=scale)))
    hi = math.log(stats.gamma.isf(TAIL, shape, scale=scale))
    width = min(Y_PANEL, math.sqrt(0.5 / df))
    panels = math.ceil((hi - lo) / width)
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(W_NODES)
    half = (hi - lo) / (2 * panels)
    mids = lo + half * (2 * np.arange(panels) + 1)
    y = (mids[:, None] + half * unit_nodes[None, :]).ravel()
    log_w = (np.log(np.tile(half * unit_weights, panels)) + stats.gamma.logpdf(np.exp(y), shape, scale=scale)
             + y)
    log_w -= special.logsumexp(log_w)  # the Gamma's mass is 1 to the quadrature's accuracy
    return np.exp(y), log_w


def student_t_mixture(z: np.ndarray, means: np.ndarray, log_weights: np.ndarray, variances: np.ndarray,
                      sigma: float, df: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sum_k w_k (N(m_k, diag v_k) * t_df(0, sigma^2 I))(z): log q, score and divergence, by quadrature over
    the t kernel's scale mixture (isotropic components through their radial profile, radial_profile)."""
    dim = z.shape[1]
    # a point at squared distance r^2 from every component draws its density from w near
    # sigma^2 (df + d) / r^2: the nodes reach a thousand times below that
    nearest = _pair_sq(z, means)
    w_low = sigma**2 * (df + dim) / max(float(nearest.max()), 1e-300) / 1e3
    w, log_omega = scale_nodes(df, w_low)
    if np.all(variances == variances[:, :1]):
        return _radial_mixture(z, means, log_weights, variances[:, 0], sigma, w, log_omega)
    k, j = len(means), len(w)
    all_means = np.repeat(means, j, axis=0)
    all_vars = (variances[:, None, :] + (sigma**2 / w)[None, :, None]).reshape(k * j, dim)
    all_logw = (log_weights[:, None] + log_omega[None, :]).reshape(k * j)
    return diagonal_density(z, all_means, all_logw, all_vars)


PROFILE_STEP = 0.004  # grid spacing in log(r^2 + a^2) of the radial profiles (cubic interpolation)


def radial_profile(a2: float, sigma: float, dim: int, w: np.ndarray, log_omega: np.ndarray,
                   r2: np.ndarray) -> np.ndarray:
    """For h(r^2) = int N_d(r; 0, (a^2 + sigma^2 / w) I) Gamma(dw), an isotropic component convolved with
    the t kernel: log h, d log h / d r^2 = -E[1 / (2 v)] and d^2 log h / (d r^2)^2 = Var[1 / (2 v)] (the
    moments under the posterior over the nodes, v = a^2 + sigma^2 / w) at squared radii r2, (3, len(r2))."""
    v = torch.as_tensor(a2 + sigma**2 / w, dtype=torch.float64)  # (J,)
    r2t = torch.as_tensor(r2, dtype=torch.float64)
    logits = (torch.as_tensor(log_omega)[None] - 0.5 * dim * torch.log(2 * math.pi * v)[None]
              - r2t[:, None] / (2 * v[None]))
    norm = torch.logsumexp(logits, 1)
    posterior = torch.exp(logits - norm[:, None])
    half_inv = 0.5 / v
    first = posterior @ half_inv
    second = posterior @ (half_inv * half_inv) - first * first
    return torch.stack([norm, -first, second]).numpy()


def _radial_mixture(z: np.ndarray, means: np.ndarray, log_weights: np.ndarray, a2: np.ndarray, sigma: float,
                    w: np.ndarray, log_omega: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The isotropic components' mixture through each distinct variance's radial profile, tabulated on a
    uniform grid in t = log(r^2 + a^2) and interpolated by cubic Lagrange polynomials (error ~ 1e-11 at
    PROFILE_STEP): with L(r^2) = log h, the component's score is 2 L' (z - m) and its Laplacian over h is
    4 L'^2 r^2 + 4 L'' r^2 + 2 d L'."""
    zt, mt, lw = (torch.as_tensor(a, dtype=torch.float64) for a in (z, means, log_weights))
    n, dim = zt.shape
    r2_max = float(_pair_sq(z, means, torch.amax).max())
    levels, group = np.unique(a2, return_inverse=True)
    t0 = np.log(levels)
    count = int(math.ceil((math.log(r2_max + levels.min()) - t0.min()) / PROFILE_STEP)) + 4
    grids = t0[:, None] + PROFILE_STEP * (np.arange(count) - 1)[None, :]  # one point below t0
    tables = torch.as_tensor(np.stack([radial_profile(a, sigma, dim, w, log_omega,
                                                      np.exp(g) - a)
                                       for a, g in zip(levels, grids)]))  # (G, 3, count)
    flat_tables = tables.transpose(0, 1).reshape(3, -1)  # (3, G * count)
    group_t, t0_t = torch.as_tensor(group), torch.as_tensor(t0)
    a2_t = torch.as_tensor(a2, dtype=torch.float64)
    log_q, score = torch.empty(n, dtype=torch.float64), torch.empty(n, dim, dtype=torch.float64)
    div = torch.empty(n, dtype=torch.float64)
    step = max(1, BLOCK // (len(mt) * dim))
    for start in range(0, n, step):
        diff = zt[start:start + step, None, :] - mt[None]  # (b, K, d)
        r2 = (diff * diff).sum(-1)
        pos = (torch.log(r2 + a2_t[None]) - t0_t[group_t][None]) / PROFILE_STEP + 1
        index = pos.floor().long().clamp(1, count - 3)
        f = pos - index
        weights = torch.stack([-f * (f - 1) * (f - 2) / 6, (f + 1) * (f - 1) * (f - 2) / 2,
                               -(f + 1) * f * (f - 2) / 2, (f + 1) * f * (f - 1) / 6])  # (4, b, K)
        flat = group_t[None] * count + index  # (b, K) into each profile's flattened table
        values = sum(weights[i][None] * flat_tables[:, flat + (i - 1)] for i in range(4))  # (3, b, K)
        log_h, first, second = values
        logits = lw[None] + log_h
        norm = torch.logsumexp(logits, 1)
        posterior = torch.exp(logits - norm[:, None])
        s = 2 * torch.einsum("bk,bkd->bd", posterior * first, diff)
        lap = 4 * first * first * r2 + 4 * second * r2 + 2 * dim * first
        log_q[start:start + step] = norm
        score[start:start + step] = s
        div[start:start + step] = (posterior * lap).sum(1) - (s * s).sum(1)
    return log_q.numpy(), score.numpy(), div.numpy()


def _pair_sq(z: np.ndarray, means: np.ndarray, reduce=torch.amin) -> np.ndarray:
    """Squared distance from each point to its nearest (reduce=torch.amin) or farthest (torch.amax)
    mean (n,)."""
    zt, mt = torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(means, dtype=torch.float64)
    step = max(1, BLOCK // len(mt))
    blocks = [reduce(torch.cdist(zt[i:i + step], mt), 1) ** 2 for i in range(0, len(zt), step)]
    return torch.cat(blocks).numpy()


def empirical_kernel_density(x: np.ndarray, z: np.ndarray, sigma: float,
                             kernel: NoiseKernel) -> tuple[np.ndarray, np.ndarray]:
    """log q and the score of the empirical mixture (1/N) sum_i k_sigma(z - x_i): the finite-data DSM
    optimum under the kernel (the posterior over training points weights each kernel's own score)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    n, dim = z.shape
    log_q, score = np.empty(n), np.empty((n, dim))
    step = max(1, BLOCK // (len(x) * dim))
    for start in range(0, n, step):
        u = z[start:start + step, None, :] - x[None]  # (b, N, d)
        logits = torch.as_tensor(kernel.log_density(u, sigma)) - math.log(len(x))
        norm = torch.logsumexp(logits, 1)
        posterior = torch.exp(logits - norm[:, None])
        b = u.shape[0]
        e = torch.as_tensor(u.reshape(-1, dim).T / sigma)  # (d, b N), the standard noise of each pair
        own = kernel.target(e, sigma).T.reshape(b, len(xt), dim)
        log_q[start:start + step] = norm.numpy()
        score[start:start + step] = torch.einsum("bn,bnd->bd", posterior, own).numpy()
    return log_q, score
