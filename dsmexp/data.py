"""Built-in datasets: how to sample them and the generating process the reference scores integrate over.

Every dataset is built from its config group and a geometry seed (the run's data seed): the random
plane of an embedded curve, the means of a mixture, the rotation of a Gaussian. At their defaults
(dim = 2 curves, an unrotated Gaussian) no random geometry is drawn, so the data are today's, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

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


class HalfMoon(CurveData):
    """sklearn's make_moons: two half circles, uniform in angle, plus N(0, noise^2 I)."""

    def __init__(self, n_samples: int, noise: float, dim: int = 2, seed: int = 0) -> None:
        super().__init__(n_samples, dim, seed)
        self.noise = noise
        self.curves = (Curve("outer_moon", 0.0, math.pi, 0.5), Curve("inner_moon", 0.0, math.pi, 0.5))

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


Dataset = HalfMoon | SwissRoll | Gaussian | GaussianMixture


def build_dataset(cfg: DictConfig, seed: int = 0) -> Dataset:
    """The dataset described by the `dataset` config group; `seed` draws its random geometry."""
    if cfg.name == "half_moon":
        return HalfMoon(cfg.n_samples, cfg.noise, cfg.dim, seed)
    if cfg.name == "swiss_roll":
        return SwissRoll(cfg.n_samples, cfg.noise, cfg.scale, cfg.dim, seed)
    if cfg.name == "gaussian":
        return Gaussian(cfg.n_samples, cfg.dim, *gaussian_moments(cfg, seed))
    if cfg.name == "gmm":
        return GaussianMixture(cfg.n_samples, *mixture_parameters(cfg, seed))
    raise ValueError(f"dataset={cfg.name}: unknown dataset")


def gaussian_moments(cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


def mixture_parameters(cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
