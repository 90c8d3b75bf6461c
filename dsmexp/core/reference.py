"""Exact reference scores grad_z log q_sigma(z) of the noised data q_sigma = p_data * N(0, sigma^2 I).

- Gaussian data: closed form, grad log q_sigma(z) = -(Sigma + sigma^2 I)^-1 (z - mu).
- Gaussian mixture sum_k w_k N(mu_k, s_k^2 I): q_sigma = sum_k w_k N(mu_k, (s_k^2 + sigma^2) I), so
  grad log q_sigma(z) = sum_k pi_k(z) (mu_k - z) / (s_k^2 + sigma^2) with the posterior pi_k(z) from a
  log-sum-exp over components.
- Half-moon and Swiss roll: p_data is a curve c(t), t uniform, blurred by N(0, noise^2 I), so q_sigma is
  the curve measure convolved with N(0, (noise^2 + sigma^2) I). The integral over t is done by composite
  Gauss-Legendre quadrature (GL_NODES per panel, PANELS_PER_WIDTH panels per kernel width of arc length)
  in log space; relative accuracy is better than 1e-8 against adaptive quadrature (tests/test_reference.py).
  A curve embedded in a 2-D plane of R^d (orthonormal basis B) factorises: with y = B^T z and
  z_perp = z - B y, q_sigma(z) = q2_sigma(y) N(z_perp; 0, (noise^2 + sigma^2) I_{d-2}), so the score is
  B grad log q2_sigma(y) - z_perp / (noise^2 + sigma^2): the 2-D quadrature score plus a linear term.
- Empirical: the score of (1/N) sum_i N(x_i, sigma^2 I) for a training set, the finite-data DSM optimum.
- Another noise kernel (noise.kernel=laplace or student_t, noise.py): q_sigma = p_data * k_sigma, from the
  data's density as a mixture of diagonal Gaussians (datasets.py, gaussian_parts) in closed form or by
  quadrature over the kernel's scale mixture (kernel_densities.py). At sigma = 0 the kernel plays no part.
- The divergence of each score (the Laplacian of log q_sigma) from the same posterior (densities.py): the
  exact trace the probability-flow likelihood of the exact score needs.

All arrays are float64 numpy: z has shape (n, d), scores (n, d), log densities (n,).
"""

from __future__ import annotations

import math

import numpy as np

from dsmexp.core.datasets import Dataset
from dsmexp.core.densities import ReferenceUnavailable, mixture_density
from dsmexp.core.kernel_densities import empirical_kernel_density, noised_density
from dsmexp.core.noise import GAUSSIAN, NoiseKernel

__all__ = ["ReferenceUnavailable", "empirical_score", "reference_divergence", "reference_log_density",
           "reference_score"]


def reference_score(dataset: Dataset, z: np.ndarray, sigma: float,
                    kernel: NoiseKernel = GAUSSIAN) -> np.ndarray:
    """grad_z log q_sigma(z) for a dataset (dsmexp.reference_score also takes a built-in dataset's name)."""
    return _density(dataset, z, sigma, kernel)[1]


def reference_log_density(dataset: Dataset, z: np.ndarray, sigma: float,
                          kernel: NoiseKernel = GAUSSIAN) -> np.ndarray:
    """log q_sigma(z), normalised."""
    return _density(dataset, z, sigma, kernel)[0]


def reference_divergence(dataset: Dataset, z: np.ndarray, sigma: float,
                         kernel: NoiseKernel = GAUSSIAN) -> np.ndarray:
    """div_z grad_z log q_sigma(z), the Laplacian of log q_sigma (n,)."""
    return _density(dataset, z, sigma, kernel)[2]


def empirical_score(x: np.ndarray, z: np.ndarray, sigma: float, kernel: NoiseKernel = GAUSSIAN) -> np.ndarray:
    """Score of the empirical mixture (1/N) sum_i k_sigma(z - x_i) at z (needs sigma > 0); the Gaussian
    kernel's N(x_i, sigma^2 I) by default."""
    if sigma <= 0:
        raise ReferenceUnavailable("the empirical reference needs sigma > 0")
    x = np.asarray(x, dtype=float)
    if not kernel.gaussian:
        return empirical_kernel_density(x, np.asarray(z, dtype=float), sigma, kernel)[1]
    log_weights = np.full(len(x), -math.log(len(x)))
    return mixture_density(np.asarray(z, dtype=float), x, log_weights, sigma**2)[1]


def _density(dataset: Dataset, z: np.ndarray, sigma: float,
             kernel: NoiseKernel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if kernel.gaussian or sigma == 0:
        return dataset.density(np.asarray(z, dtype=float), sigma)
    return noised_density(dataset.gaussian_parts(kernel), z, sigma, kernel)
