"""Built-in datasets: how to sample them and the generating process the reference scores integrate over."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from sklearn.datasets import make_moons, make_swiss_roll


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


class HalfMoon:
    """sklearn's make_moons: two half circles, uniform in angle, plus N(0, noise^2 I)."""

    dim = 2

    def __init__(self, n_samples: int, noise: float) -> None:
        self.n_samples, self.noise = n_samples, noise
        self.curves = (Curve("outer_moon", 0.0, math.pi, 0.5), Curve("inner_moon", 0.0, math.pi, 0.5))

    def sample(self, n: int, seed: int) -> np.ndarray:
        return make_moons(n_samples=n, noise=self.noise, random_state=seed)[0]


class SwissRoll:
    """sklearn's make_swiss_roll on its (x, z) plane, times `scale`: scale * (t cos t, t sin t) + noise."""

    dim = 2

    def __init__(self, n_samples: int, noise: float, scale: float) -> None:
        self.n_samples, self.scale = n_samples, scale
        self.noise = noise * scale  # std of the 2-D blur after scaling
        self.curves = (Curve("swiss_roll", 1.5 * math.pi, 4.5 * math.pi, 1.0, scale),)

    def sample(self, n: int, seed: int) -> np.ndarray:
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


Dataset = HalfMoon | SwissRoll | Gaussian


def build_dataset(cfg: DictConfig) -> Dataset:
    """The dataset described by the `dataset` config group."""
    if cfg.name == "half_moon":
        return HalfMoon(cfg.n_samples, cfg.noise)
    if cfg.name == "swiss_roll":
        return SwissRoll(cfg.n_samples, cfg.noise, cfg.scale)
    if cfg.name == "gaussian":
        mean = np.broadcast_to(np.asarray(_plain(cfg.mean), dtype=float), (cfg.dim,)).copy()
        if cfg.cov is None:
            cov = np.diag(np.broadcast_to(np.asarray(_plain(cfg.scale), dtype=float) ** 2, (cfg.dim,)))
        else:
            cov = np.asarray(_plain(cfg.cov), dtype=float)
        return Gaussian(cfg.n_samples, cfg.dim, mean, cov)
    raise ValueError(f"dataset={cfg.name}: unknown dataset")


def _plain(value: object) -> object:
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
