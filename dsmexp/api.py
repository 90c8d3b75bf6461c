"""The Python API's functions that take a built-in dataset by name (dsmexp.reference_score("half_moon",
z, 0.01)): the name is composed with its conf/dataset defaults, then the core computes. noise= names the
noise kernel (gaussian, laplace, student_t with df=) of q_sigma = p_data * k_sigma."""

from __future__ import annotations

import numpy as np

from dsmexp.config.compose import load_dataset
from dsmexp.core import reference
from dsmexp.core.datasets import Dataset
from dsmexp.core.noise import KERNELS, NoiseKernel


def _dataset(dataset: Dataset | str) -> Dataset:
    return load_dataset(dataset) if isinstance(dataset, str) else dataset


def _kernel(noise: str, df: float) -> NoiseKernel:
    if noise not in KERNELS:
        raise ValueError(f"noise={noise!r}: must be one of {', '.join(KERNELS)}")
    if not df > 0:
        raise ValueError(f"df={df}: must be > 0")
    return NoiseKernel(noise, float(df))


def reference_score(dataset: Dataset | str, z: np.ndarray, sigma: float, noise: str = "gaussian",
                    df: float = 3.0) -> np.ndarray:
    """grad_z log q_sigma(z) for a dataset, or a built-in dataset's name with its default settings."""
    return reference.reference_score(_dataset(dataset), z, sigma, _kernel(noise, df))


def reference_log_density(dataset: Dataset | str, z: np.ndarray, sigma: float, noise: str = "gaussian",
                          df: float = 3.0) -> np.ndarray:
    """log q_sigma(z), normalised, for a dataset or a built-in dataset's name."""
    return reference.reference_log_density(_dataset(dataset), z, sigma, _kernel(noise, df))


def reference_divergence(dataset: Dataset | str, z: np.ndarray, sigma: float, noise: str = "gaussian",
                         df: float = 3.0) -> np.ndarray:
    """div_z grad_z log q_sigma(z) (the Laplacian of log q_sigma) for a dataset or a built-in name."""
    return reference.reference_divergence(_dataset(dataset), z, sigma, _kernel(noise, df))
