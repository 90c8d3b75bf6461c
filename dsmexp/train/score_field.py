"""score_field.npz: a 2-D run's learned score on a grid covering the data, beside the exact reference
score of q_sigma on the same grid (NaN where the data has none), written at the end of a run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from dsmexp.core.datasets import Dataset
from dsmexp.core.noise import GAUSSIAN, NoiseKernel
from dsmexp.core.reference import ReferenceUnavailable, reference_score
from dsmexp.records import artifacts


def save_score_field(path: Path, model: torch.nn.Module, dataset: Dataset, x: torch.Tensor, sigma: float,
                     multiscale: bool, grid_size: int, kernel: NoiseKernel = GAUSSIAN) -> None:
    """The network's score at sigma (a noise-conditional one at its smallest level) on grid_size^2 points
    spanning the training data x with a 10% margin; nothing for d != 2."""
    if dataset.dim != 2:
        return
    data = x.cpu().double().numpy()
    grid_x, grid_y = (_axis(data[:, i], grid_size) for i in range(2))
    xx, yy = np.meshgrid(grid_x, grid_y, indexing="xy")
    grid = np.stack([xx.ravel(), yy.ravel()], 1)
    shape = (len(grid_y), len(grid_x), 2)
    with torch.no_grad():
        points = torch.as_tensor(grid, dtype=x.dtype, device=x.device)
        scales = torch.full((len(grid),), sigma, dtype=x.dtype, device=x.device)
        args = (scales,) if multiscale else ()
        score = model(points, *args).cpu().double().numpy().reshape(shape)
    try:
        reference = reference_score(dataset, grid, sigma, kernel).reshape(shape)
    except ReferenceUnavailable:
        reference = np.full(shape, math.nan)
    artifacts.save_score_field(path, dict(grid_x=grid_x, grid_y=grid_y, score=score, reference=reference,
                                          data=data))


def _axis(values: np.ndarray, size: int) -> np.ndarray:
    """Grid coordinates spanning the data with a 10% margin on each side."""
    lo, hi = values.min(), values.max()
    margin = 0.1 * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - margin, hi + margin, size)
