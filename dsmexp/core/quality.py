"""Sample quality against a fresh sample of the data (never the training points) and against the exact
data score: the numbers a sampler's output is judged by.

- mmd2: the unbiased MMD^2 (Gretton et al. 2012, Eq. 3) with the RBF kernel exp(-|x - y|^2 / (2 h^2)),
  h the median pairwise distance of the pooled sample (the median heuristic) times 0.5, 1 and 2;
- w2_sliced (POT, ot.sliced_wasserstein_distance) and w2 (POT, ot.emd2 on squared distances, exact, on
  at most W2_POINTS points of each sample);
- energy: the energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely and Rizzo), U-statistics;
- ksd: the kernel Stein discrepancy KSD^2 (Liu, Lee and Jordan 2016; Gorham and Mackey 2017), the
  U-statistic with the IMQ kernel (1 + |x - y|^2)^(-1/2), against the exact score of the data;
- for a Gaussian mixture: the fraction of samples per component (each sample to its most probable
  component) and the components covered (a fraction at least COVERED of the true weight).

The energy distance, MMD and KSD are written here: each is a few lines of pairwise distances, and the
packages that offer them either bring a JIT compiler (dcor: numba) or another framework. POT does the
transport.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

W2_POINTS = 3000
BANDWIDTH_FACTORS = (0.5, 1.0, 2.0)
COVERED = 0.1


def _t(a) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def median_bandwidth(x, y, limit: int = 2000) -> float:
    """The median pairwise distance of the pooled sample (its first `limit` points of each)."""
    pooled = torch.cat([_t(x)[:limit], _t(y)[:limit]])
    d = torch.cdist(pooled, pooled)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def mmd2(x, y, bandwidth: float) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d), RBF kernel of this bandwidth."""
    x, y = _t(x), _t(y)
    m, n = len(x), len(y)

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth**2))

    kxx, kyy = k(x, x), k(y, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * k(x, y).mean())


def energy_distance(x, y) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'|, the within-sample means over distinct pairs."""
    x, y = _t(x), _t(y)
    m, n = len(x), len(y)
    xx = torch.cdist(x, x).sum() / (m * (m - 1))
    yy = torch.cdist(y, y).sum() / (n * (n - 1))
    return float(2 * torch.cdist(x, y).mean() - xx - yy)


def w2(x, y, limit: int = W2_POINTS) -> float:
    """The exact 2-Wasserstein distance between the empirical measures (POT's network simplex)."""
    import ot

    x, y = np.asarray(x, dtype=np.float64)[:limit], np.asarray(y, dtype=np.float64)[:limit]
    cost = ot.dist(x, y)  # squared Euclidean
    return math.sqrt(max(float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10**7)), 0.0))


def w2_sliced(x, y, seed: int, projections: int = 500) -> float:
    """The sliced 2-Wasserstein distance (POT, Monte Carlo over random directions)."""
    import ot

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(ot.sliced_wasserstein_distance(x, y, n_projections=projections, p=2, seed=seed))


def ksd(x, score_x) -> float:
    """KSD^2 of the sample x (n, d) against the density whose score at x is score_x (n, d): the
    U-statistic of the Stein kernel of k(x, y) = (1 + |x - y|^2)^beta, beta = -1/2."""
    x, s = _t(x), _t(score_x)
    n, dim = x.shape
    beta = -0.5
    r = x[:, None, :] - x[None, :, :]  # (n, n, d)
    r2 = (r * r).sum(-1)
    q = 1 + r2
    k = q**beta
    dk = 2 * beta * q ** (beta - 1)  # grad_x k = dk r, grad_y k = -dk r
    u = ((s @ s.T) * k - dk * torch.einsum("id,ijd->ij", s, r) + dk * torch.einsum("jd,ijd->ij", s, r)
         - 2 * beta * (2 * (beta - 1) * q ** (beta - 2) * r2 + dim * q ** (beta - 1)))
    return float((u.sum() - u.diagonal().sum()) / (n * (n - 1)))


def mixture_weights(x, means: np.ndarray, weights: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The fraction of samples whose most probable component (given the mixture) is each component."""
    x = np.asarray(x, dtype=np.float64)
    dim = x.shape[1]
    d2 = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    log_post = np.log(weights)[None] - d2 / (2 * scales[None] ** 2) - dim * np.log(scales)[None]
    counts = np.bincount(log_post.argmax(1), minlength=len(weights))
    return counts / len(x)


def quality(samples, data, data_score, seed: int, mixture: tuple | None = None) -> dict[str, float]:
    """Every quality number of one sample against the fresh data sample: mmd2 at the three bandwidths
    (of the median heuristic on this pair), w2, w2_sliced, energy, ksd (data_score: the exact data
    score at the samples), and for a mixture (means, weights, scales) the weight per component, the
    components covered and the largest weight error."""
    samples, data = np.asarray(samples, dtype=np.float64), np.asarray(data, dtype=np.float64)
    if not np.isfinite(samples).all():
        return {"finite": 0.0}
    h = median_bandwidth(samples, data)
    out = {f"mmd2_h{f:g}": mmd2(samples, data, f * h) for f in BANDWIDTH_FACTORS}
    out |= {"w2": w2(samples, data), "w2_sliced": w2_sliced(samples, data, seed),
            "energy": energy_distance(samples, data), "ksd": ksd(samples[:2000], data_score[:2000]),
            "finite": 1.0}
    if mixture is not None:
        means, weights, scales = mixture
        got = mixture_weights(samples, means, weights, scales)
        out |= {f"weight_{k}": float(w) for k, w in enumerate(got)}
        out["modes_covered"] = float((got >= COVERED * weights).sum())
        out["weight_error"] = float(np.abs(got - weights).max())
    return out
