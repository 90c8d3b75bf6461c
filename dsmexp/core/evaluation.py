"""How far the learned score is from the truth: explicit score-matching losses (Eq. 2) on a held-out sample.

- esm: 0.5 mean |s(z) - grad log q_sigma(z)|^2, z ~ q_sigma (the loss ISM and DSM estimate up to a constant);
- esm_data: 0.5 mean |s(x) - grad log p_data(x)|^2, x ~ p_data (distance to the clean data score: for
  sigma > 0 this is the bias the paper discusses);
- esm_emp: as esm, against the empirical training-set mixture at sigma (the finite-data DSM optimum);
- esm_rel, esm_data_rel: esm and esm_data divided by mean |reference score|^2 on the same held-out
  points (z for esm, x for esm_data), so that numbers compare across dimensions (s = 0 scores 0.5);
- curl (2-D): mean |d s_2 / d z_1 - d s_1 / d z_2| over z: how far a free-form field is from a gradient
  field (the exact score and an energy model's are gradients: zero up to rounding);
- loglik, kl (2-D, energy models, networks.EnergyMLP): mean log p_model(z) with p_model = exp(-E) / Z
  normalised on a grid (energy.py), and KL(q_sigma || p_model) = mean [log q_sigma(z) - log p_model(z)]
  against the exact log density.

The held-out points and their reference scores are computed once per run; one evaluation is then a
forward pass over 2 x eval_samples points. A reference that does not exist is NaN.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from torch import Tensor, func

from dsmexp.core.datasets import Dataset
from dsmexp.core.energy import grid_box, grid_log_partition
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.noise import GAUSSIAN, NoiseKernel
from dsmexp.core.reference import (
    ReferenceUnavailable,
    empirical_score,
    reference_log_density,
    reference_score,
)

log = logging.getLogger(__name__)

EVAL_METRICS = ("esm", "esm_data", "esm_emp", "esm_rel", "esm_data_rel", "curl", "loglik", "kl")
RELATIVE = {"esm_rel": "esm", "esm_data_rel": "esm_data"}  # column: the esm it divides


def _or_nan(compute, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        return compute()
    except ReferenceUnavailable as err:
        log.info("%s is NaN: %s", what, err)
        return np.full(shape, math.nan)


class HeldOut:
    """A held-out sample x ~ p_data, z = x + sigma * eps with eps from the run's noise kernel, and the three
    reference scores at it (under that kernel); with likelihood (an energy model in 2-D) also log q_sigma
    at z for loglik and kl."""

    def __init__(self, dataset: Dataset, train_x: np.ndarray, sigma: float, n: int, seed: int,
                 device: torch.device, dtype: torch.dtype, kernel: NoiseKernel = GAUSSIAN,
                 likelihood: bool = False) -> None:
        started = time.perf_counter()
        data_seed, noise_seed = np.random.SeedSequence(seed).generate_state(2)
        x = dataset.sample(n, int(data_seed))
        z = x + sigma * kernel.draw_numpy(np.random.default_rng(noise_seed), x.shape)
        refs = {
            "esm": _or_nan(lambda: reference_score(dataset, z, sigma, kernel), z.shape, "esm"),
            "esm_data": _or_nan(lambda: reference_score(dataset, x, 0.0), x.shape, "esm_data"),
            "esm_emp": _or_nan(lambda: empirical_score(train_x, z, sigma, kernel), z.shape, "esm_emp"),
        }
        as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        self.x, self.z = as_tensor(x), as_tensor(z)
        self.refs = {k: torch.as_tensor(v, dtype=torch.float64, device=device) for k, v in refs.items()}
        self.ref_power = {k: (self.refs[k] ** 2).sum(1).mean() for k in RELATIVE.values()}
        self.planar, self.log_q = x.shape[1] == 2, None
        if self.planar and likelihood:  # an energy model: log q_sigma at z and the normalisation grid
            log_q = _or_nan(lambda: reference_log_density(dataset, z, sigma, kernel), z.shape[:1], "kl")
            self.log_q = torch.as_tensor(log_q, dtype=torch.float64, device=device)
            self.box = grid_box(self.z)
        self.setup_seconds = time.perf_counter() - started

    @torch.no_grad()
    def esm(self, model: ScoreMLP) -> Tensor:
        """EVAL_METRICS as a float64 tensor on the model's device, without a host sync."""
        s_z, s_x = model(self.z).double(), model(self.x).double()
        points = {"esm": s_z, "esm_data": s_x, "esm_emp": s_z}
        values = {k: 0.5 * ((points[k] - self.refs[k]) ** 2).sum(1).mean() for k in points}
        values |= {rel: values[k] / self.ref_power[k] for rel, k in RELATIVE.items()}
        nan = torch.full((), math.nan, dtype=torch.float64, device=self.z.device)
        values |= {"curl": curl(model, self.z).abs().mean() if self.planar else nan}
        if self.log_q is not None:  # p_model = exp(-E) / Z, Z on the grid
            log_p = -model.energy(self.z).double() - grid_log_partition(model.energy, *self.box)
            values |= {"loglik": log_p.mean(), "kl": (self.log_q - log_p).mean()}
        return torch.stack([values.get(k, nan) for k in EVAL_METRICS])


def curl(model, z: Tensor) -> Tensor:
    """The curl d s_2 / d z_1 - d s_1 / d z_2 of a 2-D score field at points z (n, 2), from two
    Jacobian-vector products (torch.func): zero for a gradient field such as an energy model's."""
    columns = [func.jvp(model, (z,), (torch.zeros_like(z).index_fill_(1, torch.tensor(i, device=z.device),
                                                                        1.0),))[1] for i in range(2)]
    return (columns[0][:, 1] - columns[1][:, 0]).detach().double()


LEVEL_EVAL = ("esm", "esm_rel", "esm_data", "esm_data_rel")  # per level of a multi-scale run


class LevelsHeldOut:
    """For a noise-conditional model: a held-out x ~ p_data, one eps, and at every level sigma_l of the
    schedule z_l = x + sigma_l eps with the exact score of q_sigma_l there, and the data score at x.
    esm at level l compares s(z_l, sigma_l) with grad log q_sigma_l (the true score-matching loss of that
    level); esm_data compares s(x, sigma_l) with grad log p_data."""

    def __init__(self, dataset: Dataset, sigmas: Tensor, n: int, seed: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        started = time.perf_counter()
        data_seed, noise_seed = np.random.SeedSequence(seed).generate_state(2)
        x = dataset.sample(n, int(data_seed))
        noise = np.random.default_rng(noise_seed).standard_normal(x.shape)
        self.sigmas = [float(s) for s in sigmas]
        zs = [x + s * noise for s in self.sigmas]
        refs = [_or_nan(lambda z=z, s=s: reference_score(dataset, z, s), z.shape, f"esm at sigma={s:g}")
                for z, s in zip(zs, self.sigmas)]
        data_ref = _or_nan(lambda: reference_score(dataset, x, 0.0), x.shape, "esm_data")
        as_tensor = lambda a, t=dtype: torch.as_tensor(a, dtype=t, device=device)  # noqa: E731
        self.x, self.z = as_tensor(x), torch.stack([as_tensor(z) for z in zs])
        self.refs = torch.stack([as_tensor(r, torch.float64) for r in refs])  # (L, n, d)
        self.data_ref = as_tensor(data_ref, torch.float64)
        self.ref_power = (self.refs ** 2).sum(2).mean(1)  # (L,)
        self.data_power = (self.data_ref ** 2).sum(1).mean()
        self.setup_seconds = time.perf_counter() - started

    @torch.no_grad()
    def esm(self, model) -> Tensor:
        """(L, LEVEL_EVAL) float64 on the model's device, without a host sync."""
        rows = []
        for level, sigma in enumerate(self.sigmas):
            scale = torch.full((len(self.x),), sigma, dtype=self.x.dtype, device=self.x.device)
            s_z, s_x = model(self.z[level], scale).double(), model(self.x, scale).double()
            esm = 0.5 * ((s_z - self.refs[level]) ** 2).sum(1).mean()
            esm_data = 0.5 * ((s_x - self.data_ref) ** 2).sum(1).mean()
            rows.append(torch.stack([esm, esm / self.ref_power[level], esm_data, esm_data / self.data_power]))
        return torch.stack(rows)

    def metrics(self, table: Tensor) -> Tensor:
        """EVAL_METRICS for metrics.csv from the level table: the values at the smallest level (where a
        sampler ends and where the paper finds DSM breaking); esm_emp is not computed (NaN)."""
        first = dict(zip(LEVEL_EVAL, table[0]))
        nan = torch.full((), math.nan, dtype=torch.float64, device=table.device)
        return torch.stack([first.get(k, nan) for k in EVAL_METRICS])
