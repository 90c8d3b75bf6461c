"""Built-in datasets: how to sample them, and each one's exact reference score (density) of the noised
data q_sigma = p_data * N(0, sigma^2 I). A new dataset is a class here with from_config, sample and
density (and gaussian_parts, its density as a mixture of diagonal Gaussians, for the non-Gaussian noise
kernels of kernel_densities.py), one DATASETS entry, its schema (dsmexp/config/dataset.py) and its YAML
(docs/architecture.md).

Every dataset is built from its config group and a geometry seed (the run's data seed): the random
plane of an embedded curve, the means of a mixture, the rotation of a Gaussian. At their defaults
(dim = 2 curves, an unrotated Gaussian) no random geometry is drawn, so the data are today's, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmexp.core.cells import CellData, Checkerboard, Square
from dsmexp.core.densities import ReferenceUnavailable, curve_nodes, gmm_density, mixture_density
from dsmexp.core.noise import NoiseKernel

GEOMETRY_STREAM = 7  # spawn key of the geometry stream, apart from any sampling stream
PERP_STREAM = 11  # spawn key of the noise across an embedded curve's plane


def geometry_rng(seed: int) -> np.random.Generator:
    """The generator that draws a dataset's fixed random geometry from the run's data seed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(GEOMETRY_STREAM,)))


def random_orthonormal(rng: np.random.Generator, dim: int, cols: int) -> np.ndarray:
    """A Haar-random dim x cols matrix with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, cols)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


@dataclass(frozen=True)
class Curve:
    """A curve c(t), t ~ U[t0, t1], carrying `weight` of the probability mass."""

    kind: str  # "outer_moon", "inner_moon" or "swiss_roll"
    t0: float
    t1: float
    weight: float
    scale: float = 1.0

    def points(self, t: np.ndarray) -> np.ndarray:
        """c(t) as an array of shape t.shape + (2,)."""
        if self.kind == "outer_moon":
            xy = (np.cos(t), np.sin(t))
        elif self.kind == "inner_moon":
            xy = (1.0 - np.cos(t), 0.5 - np.sin(t))
        else:
            xy = (t * np.cos(t), t * np.sin(t))
        return self.scale * np.stack(xy, axis=-1)

    def max_speed(self) -> float:
        """sup_t |c'(t)|, used to space quadrature nodes evenly in arc length."""
        if self.kind == "swiss_roll":
            return self.scale * math.hypot(1.0, self.t1)
        return self.scale


class CurveData:
    """A 2-D curve measure blurred by N(0, noise^2 I), placed in a 2-D plane of R^dim.

    dim = 2 is the curve in its own coordinates (basis None). For dim > 2 the plane is spanned by the
    orthonormal columns of `basis` (dim x 2, drawn from the geometry seed) and the blur is
    N(0, noise^2 I_dim):
    x = B y + noise * (I - B B^T) g with y the 2-D sample and g ~ N(0, I_dim).
    """

    curves: tuple[Curve, ...]
    noise: float

    def __init__(self, n_samples: int, dim: int, seed: int) -> None:
        self.n_samples, self.dim = n_samples, dim
        self.basis = None if dim == 2 else random_orthonormal(geometry_rng(seed), dim, 2)

    def sample_plane(self, n: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, seed: int) -> np.ndarray:
        plane = self.sample_plane(n, seed)
        if self.basis is None:
            return plane
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PERP_STREAM,)))
        g = rng.standard_normal((n, self.dim))
        g -= (g @ self.basis) @ self.basis.T
        return plane @ self.basis.T + self.noise * g

    def density(self, z: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log q_sigma(z), its score and the score's divergence: the curve measure convolved with
        N(0, (noise^2 + sigma^2) I) by quadrature over t; an embedded curve factorises into its plane and
        the linear term across it."""
        var = self.noise**2 + sigma**2
        if var == 0:
            raise ReferenceUnavailable("the data lie on a curve (noise = 0 and sigma = 0): no density")
        centres, log_weights = curve_nodes(self.curves, math.sqrt(var))
        if self.basis is None:
            return mixture_density(z, centres, log_weights, var)
        basis = self.basis
        plane = z @ basis
        perp = z - plane @ basis.T
        log_q2, score2, div2 = mixture_density(plane, centres, log_weights, var)
        log_q = (log_q2 - 0.5 * (perp * perp).sum(1) / var
                 - 0.5 * (z.shape[1] - 2) * math.log(2 * math.pi * var))
        return log_q, score2 @ basis.T - perp / var, div2 - (z.shape[1] - 2) / var


    def gaussian_parts(self, kernel: NoiseKernel) -> tuple:
        """The blurred curve as a mixture of N(c(t_k), noise^2 I) over its quadrature nodes (at kernel width
        noise, the narrowest any kernel's convolution has): kernel_densities.py's input."""
        if self.noise == 0:
            raise ReferenceUnavailable(f"noise.kernel={kernel.kind}: the exact reference blurs the curve's "
                                       "quadrature with its N(0, noise^2 I); it needs dataset.noise > 0")
        centres, log_weights = curve_nodes(self.curves, self.noise)
        if self.basis is not None:
            centres = centres @ self.basis.T
        return centres, log_weights, np.full(centres.shape, self.noise**2), None


class HalfMoon(CurveData):
    """sklearn's make_moons: two half circles, uniform in angle, plus N(0, noise^2 I)."""

    def __init__(self, n_samples: int, noise: float, dim: int = 2, seed: int = 0) -> None:
        super().__init__(n_samples, dim, seed)
        self.noise = noise
        self.curves = (Curve("outer_moon", 0.0, math.pi, 0.5), Curve("inner_moon", 0.0, math.pi, 0.5))

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> HalfMoon:
        return cls(cfg.n_samples, cfg.noise, cfg.dim, seed)

    def sample_plane(self, n: int, seed: int) -> np.ndarray:
        from sklearn.datasets import make_moons  # imported on use: a second of start-up otherwise

        return make_moons(n_samples=n, noise=self.noise, random_state=seed)[0]


class SwissRoll(CurveData):
    """sklearn's make_swiss_roll on its (x, z) plane, times `scale`: scale * (t cos t, t sin t) + noise."""

    def __init__(self, n_samples: int, noise: float, scale: float, dim: int = 2, seed: int = 0) -> None:
        super().__init__(n_samples, dim, seed)
        self.scale = scale
        self.noise = noise * scale  # std of the blur after scaling
        self.curves = (Curve("swiss_roll", 1.5 * math.pi, 4.5 * math.pi, 1.0, scale),)

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> SwissRoll:
        return cls(cfg.n_samples, cfg.noise, cfg.scale, cfg.dim, seed)

    def sample_plane(self, n: int, seed: int) -> np.ndarray:
        from sklearn.datasets import make_swiss_roll

        x = make_swiss_roll(n_samples=n, noise=self.noise / self.scale, random_state=seed)[0]
        return self.scale * x[:, [0, 2]]


class Gaussian:
    """N(mean, cov) in `dim` dimensions."""

    def __init__(self, n_samples: int, dim: int, mean: np.ndarray, cov: np.ndarray) -> None:
        self.n_samples, self.dim, self.mean, self.cov = n_samples, dim, mean, cov
        self.curves = ()

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return self.mean + rng.standard_normal((n, self.dim)) @ np.linalg.cholesky(self.cov).T

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> Gaussian:
        return cls(cfg.n_samples, cfg.dim, *gaussian_moments(cfg, seed))

    def density(self, z: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closed form: q_sigma = N(mean, cov + sigma^2 I), score -(cov + sigma^2 I)^-1 (z - mean), its
        divergence -tr (cov + sigma^2 I)^-1."""
        cov = self.cov + sigma**2 * np.eye(self.dim)
        precision = np.linalg.inv(cov)
        centred = z - self.mean
        log_det = np.linalg.slogdet(cov)[1]
        log_q = -0.5 * (np.einsum("ni,ij,nj->n", centred, precision, centred)
                        + log_det + self.dim * math.log(2 * math.pi))
        return log_q, -centred @ precision, np.full(len(z), -np.trace(precision))


    def gaussian_parts(self, kernel: NoiseKernel) -> tuple:
        """One component in the covariance's eigenbasis (rotation Q; the Student-t kernel is rotation
        invariant); the product Laplace kernel is not, so it needs a diagonal covariance."""
        if np.count_nonzero(self.cov - np.diag(np.diag(self.cov))) == 0:
            return self.mean[None], np.zeros(1), np.diag(self.cov)[None].copy(), None
        if kernel.kind == "laplace":
            raise ReferenceUnavailable("noise.kernel=laplace: the product kernel does not factor in the "
                                       "eigenbasis of a non-diagonal covariance (dataset.rotate, "
                                       "dataset.cov); "
                                       "the exact reference needs a diagonal one")
        eigenvalues, q = np.linalg.eigh(self.cov)
        return (self.mean @ q)[None], np.zeros(1), eigenvalues[None], q


class GaussianMixture:
    """sum_k w_k N(mu_k, s_k^2 I) in `dim` dimensions: K isotropic components with their own scale."""

    def __init__(self, n_samples: int, means: np.ndarray, weights: np.ndarray, scales: np.ndarray) -> None:
        self.n_samples, self.dim = n_samples, means.shape[1]
        self.means, self.weights, self.scales = means, weights, scales
        self.curves = ()

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        return self.means[component] + self.scales[component, None] * rng.standard_normal((n, self.dim))

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> GaussianMixture:
        return cls(cfg.n_samples, *mixture_parameters(cfg, seed))

    def density(self, z: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """q_sigma = sum_k w_k N(mu_k, (s_k^2 + sigma^2) I), by log-sum-exp over the components: log q,
        the score and its divergence."""
        return gmm_density(z, self.means, np.log(self.weights), self.scales**2 + sigma**2)

    def gaussian_parts(self, kernel: NoiseKernel) -> tuple:
        """Its components, isotropic: kernel_densities.py's input."""
        variances = np.repeat((self.scales**2)[:, None], self.dim, axis=1)
        return self.means, np.log(self.weights), variances, None


Dataset = HalfMoon | SwissRoll | Gaussian | GaussianMixture | CellData


# name -> class: the dataset=NAME config group's builder (from_config) and its reference score (density)
DATASETS: dict[str, type] = {"half_moon": HalfMoon, "swiss_roll": SwissRoll, "gaussian": Gaussian,
                             "gmm": GaussianMixture, "checkerboard": Checkerboard, "square": Square}


def build_dataset(cfg: Any, seed: int = 0) -> Dataset:
    """The dataset described by the `dataset` config group; `seed` draws its random geometry."""
    if cfg.name not in DATASETS:
        raise ValueError(f"dataset={cfg.name}: unknown dataset")
    return DATASETS[cfg.name].from_config(cfg, seed)


def gaussian_moments(cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of dataset=gaussian.

    Without `cov`: diag(scale^2) with the variances multiplied by a geometric ramp from 1 down to
    1 / condition (so isotropic data get exactly that condition number), then, with rotate=true,
    turned by a Haar-random rotation Q from the seed: cov = Q diag Q^T. An explicit cov is rotated alike.
    """
    dim = cfg.dim
    mean = np.broadcast_to(np.asarray(_plain(cfg.mean), dtype=float), (dim,)).copy()
    if cfg.cov is None:
        variances = np.broadcast_to(np.asarray(_plain(cfg.scale), dtype=float) ** 2, (dim,))
        if cfg.condition != 1:
            variances = variances * float(cfg.condition) ** -np.linspace(0.0, 1.0, dim)
        cov = np.diag(variances)
    else:
        cov = np.asarray(_plain(cfg.cov), dtype=float)
    if cfg.rotate:
        q = random_orthonormal(geometry_rng(seed), dim, dim)
        cov = q @ cov @ q.T
        cov = 0.5 * (cov + cov.T)
    return mean, cov


def mixture_parameters(cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (K, d), weights (K,) summing to 1 and scales (K,) of dataset=gmm.

    means: null draws mu_k ~ N(0, spread^2 I_d) from the seed; weights: null is uniform; scale is one
    number for every component or a list of K.
    """
    k = cfg.components
    if cfg.means is None:
        means = cfg.spread * geometry_rng(seed).standard_normal((k, cfg.dim))
    else:
        means = np.asarray(_plain(cfg.means), dtype=float)
    weights = np.ones(k) if cfg.weights is None else np.asarray(_plain(cfg.weights), dtype=float)
    scales = np.broadcast_to(np.asarray(_plain(cfg.scale), dtype=float), (k,)).copy()
    return means, weights / weights.sum(), scales


def _plain(value: object) -> object:
    """A config value as plain Python: lists (an OmegaConf ListConfig included) become lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
