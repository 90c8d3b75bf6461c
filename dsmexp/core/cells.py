"""Data with edges: the uniform density on a union of axis-aligned cells (dataset=checkerboard, square).

Such data break the paper's Assumption 1 (a differentiable data density): p_data jumps at every edge, so
ISM's integration by parts (Eq. 8) leaves boundary terms and ISM at sigma = 0 is ill-posed, while DSM
and ISM at sigma > 0 see the smooth q_sigma = p_data * N(0, sigma^2 I). That q_sigma is exact in closed
form. With cells c = prod_i [a_ci, b_ci] of total area A and F_ci(z_i) = Phi((b_ci - z_i) / sigma) -
Phi((a_ci - z_i) / sigma),

    q_sigma(z) = (1 / A) sum_c prod_i F_ci(z_i),

so with the cells' posterior w_c(z) = prod_i F_ci / sum_c' prod_i F_c'i,

    grad_i log q_sigma = sum_c w_c F'_ci / F_ci,
    div grad log q_sigma = sum_i [sum_c w_c F''_ci / F_ci - (sum_c w_c F'_ci / F_ci)^2],

with F' = (phi(u_a) - phi(u_b)) / sigma and F'' = (u_a phi(u_a) - u_b phi(u_b)) / sigma^2 at
u_a = (a - z) / sigma < u_b = (b - z) / sigma. Everything is computed in log space (log F from log_ndtr on
the side of the interval away from z; when z lies inside it, from log1p of the two tails or, for a narrow
interval, from erf), so points many sigma from every cell keep their score (it points to the nearest
cell, about (edge - z) / sigma^2) to 1e-9. Their divergence is a difference of two terms (u / sigma)^2
apart, u the distance in sigma: float64 keeps about 1e-16 u^4 of it (1e-9 within 30 sigma of the cells,
1e-6 at 500 sigma; tests/core/test_cells.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from dsmexp.core.densities import ReferenceUnavailable
from dsmexp.core.noise import NoiseKernel

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_interval_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log (Phi(hi) - Phi(lo)) for lo < hi, accurate in both tails and for narrow intervals."""
    out = np.empty(np.broadcast(lo, hi).shape)
    lo, hi = np.broadcast_to(lo, out.shape), np.broadcast_to(hi, out.shape)
    left, right = hi <= 0, lo >= 0  # the interval lies left of 0, right of 0, or holds it
    inside = ~(left | right)
    a, b = special.log_ndtr(hi[left]), special.log_ndtr(lo[left])
    out[left] = a + np.log(-np.expm1(b - a))
    a, b = special.log_ndtr(-lo[right]), special.log_ndtr(-hi[right])
    out[right] = a + np.log(-np.expm1(b - a))
    # holding 0: 1 - Phi(lo) - Phi(-hi) by log1p when the tails are small, else as a sum of two erfs
    lo, hi = lo[inside], hi[inside]
    tails = special.ndtr(lo) + special.ndtr(-hi)
    half = math.sqrt(0.5)
    out[inside] = np.where(tails < 0.5, np.log1p(-np.minimum(tails, 0.5)),
                           np.log(0.5 * (special.erf(hi * half) + special.erf(-lo * half))))
    return out


class CellData:
    """Uniform on the union of cells [lower_c, upper_c] (K, 2) in the plane."""

    def __init__(self, n_samples: int, lower: np.ndarray, upper: np.ndarray) -> None:
        self.n_samples, self.dim = n_samples, 2
        self.lower, self.upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        self.areas = np.prod(self.upper - self.lower, axis=1)
        self.curves = ()

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        cell = rng.choice(len(self.areas), size=n, p=self.areas / self.areas.sum())
        return self.lower[cell] + rng.random((n, 2)) * (self.upper[cell] - self.lower[cell])

    def density(self, z: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log q_sigma(z), its score and the score's divergence, in closed form (module docstring)."""
        if sigma == 0:
            raise ReferenceUnavailable("uniform cells have edges (no differentiable density at sigma = 0, "
                                       "the paper's Assumption 1): their score is defined for sigma > 0")
        z = np.asarray(z, dtype=float)[:, None, :]  # (n, 1, 2) against the cells (K, 2)
        u_a, u_b = (self.lower - z) / sigma, (self.upper - z) / sigma
        log_f = log_interval_mass(u_a, u_b)  # (n, K, 2)
        log_m = log_f.sum(2)  # log prod_i F_ci
        top = log_m.max(1, keepdims=True)
        mass = np.exp(log_m - top)
        total = mass.sum(1, keepdims=True)
        w = mass / total  # the cells' posterior
        log_q = (top[:, 0] + np.log(total[:, 0])) - math.log(self.areas.sum())
        phi_a = np.exp(-0.5 * u_a**2 - _LOG_SQRT_2PI - log_f)  # phi(u_a) / F
        phi_b = np.exp(-0.5 * u_b**2 - _LOG_SQRT_2PI - log_f)
        r = (phi_a - phi_b) / sigma  # F' / F
        h = (u_a * phi_a - u_b * phi_b) / sigma**2  # F'' / F
        score = np.einsum("nk,nki->ni", w, r)
        div = (np.einsum("nk,nki->ni", w, h) - score**2).sum(1)
        return log_q, score, div

    def gaussian_parts(self, kernel: NoiseKernel) -> tuple:
        raise ReferenceUnavailable(f"noise.kernel={kernel.kind}: the exact reference of uniform cells is "
                                   "written for the Gaussian kernel only")


class Checkerboard(CellData):
    """The cells (i, j) with i + j even of a cells x cells board of side `size`, centred at 0."""

    def __init__(self, n_samples: int, cells: int, size: float) -> None:
        side = size / cells
        filled = [(i, j) for i in range(cells) for j in range(cells) if (i + j) % 2 == 0]
        lower = np.array([(-size / 2 + i * side, -size / 2 + j * side) for i, j in filled])
        super().__init__(n_samples, lower, lower + side)

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> Checkerboard:
        return cls(cfg.n_samples, cfg.cells, cfg.size)


class Square(CellData):
    """Uniform on the square [-size / 2, size / 2]^2."""

    def __init__(self, n_samples: int, size: float) -> None:
        super().__init__(n_samples, np.full((1, 2), -size / 2), np.full((1, 2), size / 2))

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> Square:
        return cls(cfg.n_samples, cfg.size)
