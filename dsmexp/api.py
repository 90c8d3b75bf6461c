"""The Python API's functions that take a built-in dataset by name (dsmexp.reference_score("half_moon",
z, 0.01)): the name is composed with its conf/dataset defaults, then the core computes."""

from __future__ import annotations

import numpy as np

from dsmexp.config.compose import load_dataset
from dsmexp.core import reference
from dsmexp.core.datasets import Dataset


def _dataset(dataset: Dataset | str) -> Dataset:
    return load_dataset(dataset) if isinstance(dataset, str) else dataset


def reference_score(dataset: Dataset | str, z: np.ndarray, sigma: float) -> np.ndarray:
    """grad_z log q_sigma(z) for a dataset, or a built-in dataset's name with its default settings."""
    return reference.reference_score(_dataset(dataset), z, sigma)


def reference_log_density(dataset: Dataset | str, z: np.ndarray, sigma: float) -> np.ndarray:
    """log q_sigma(z), normalised, for a dataset or a built-in dataset's name."""
    return reference.reference_log_density(_dataset(dataset), z, sigma)


def reference_divergence(dataset: Dataset | str, z: np.ndarray, sigma: float) -> np.ndarray:
    """div_z grad_z log q_sigma(z) (the Laplacian of log q_sigma) for a dataset or a built-in name."""
    return reference.reference_divergence(_dataset(dataset), z, sigma)
