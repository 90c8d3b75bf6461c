"""The loss=NAME config group: one schema for every objective (the names and what each needs are the
rows of dsmexp/core/objectives/registry.py), with its pure checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from dsmexp.config.dataset import DATASET_SCHEMAS, data_extent
from dsmexp.config.schedule import multiscale


@dataclass
class LossConfig:
    name: str = MISSING
    switch_sigma: float | None = None  # loss=hybrid: ISM below this sigma, DSM above
    kappa: float | None = None  # loss=tsm_mix: the weight of the TSM target; null: v / (v + sigma^2)


def check_loss(cfg: DictConfig, fail: Callable[..., None]) -> None:
    """The objective exists, has a meaning at this sigma, and its own keys (fd_eps) are in range."""
    name = cfg.loss.name
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.objectives.registry import OBJECTIVES

    if name not in OBJECTIVES:
        fail(f"loss={name}: must be one of {', '.join(OBJECTIVES)}")
    row = OBJECTIVES[name]
    if row.needs_noise and cfg.sigma == 0:
        fail(f"sigma=0 with loss={name}: {row.label} needs sigma > 0 (its target is -eps/sigma); use "
             "loss=ism to train on clean data", sweep_skippable=True)
    schema = DATASET_SCHEMAS.get(cfg.dataset.name)
    edges = schema.no_clean_density(cfg.dataset) if schema is not None else None
    if edges and cfg.sigma == 0 and not multiscale(cfg):
        fail(f"sigma=0 with loss={name}: {edges}, so {row.label} at sigma = 0 is ill-posed (Eq. 8's "
             "integration by parts leaves boundary terms); use sigma > 0")
    if edges and row.clean_score:
        fail(f"loss={name}: {row.label} needs the clean data's score grad log p_data, and {edges}; use "
             "dsm_s or dsm_cv")
    if row.clean_score and cfg.dataset.get("noise", None) == 0:
        fail(f"loss={name} with dataset={cfg.dataset.name} noise=0: {row.label} needs the clean data's score "
             "grad log p_data, and points on a curve have no density; use dataset.noise > 0 or a dataset "
             "with a density (gaussian, gmm)")
    if cfg.loss.get("kappa") is not None:
        if "loss.kappa" not in row.keys:
            fail(f"loss.kappa={cfg.loss.kappa}: only loss=tsm_mix reads it (loss={name})")
        elif not 0 <= cfg.loss.kappa <= 1:
            fail(f"loss.kappa={cfg.loss.kappa}: must be between 0 (DSM-S's target) and 1 (TSM's) or null "
                 "(v / (v + sigma^2))")
    if "fd_eps" in row.keys:
        low, high, radius = fd_eps_range(cfg)
        if not low <= cfg.fd_eps <= high:
            fail(f"fd_eps={cfg.fd_eps}: must be between {low:.3g} and {high:.3g} here: sqrt(eps of "
                 f"{cfg.dtype}) R <= fd_eps <= R, with R = sqrt(d) x the data's extent (+3 sigma) = "
                 f"{radius:.3g}; smaller, z +- u rounds to z; larger, the difference is no longer local")


def fd_eps_range(cfg: DictConfig) -> tuple[float, float, float]:
    """(lowest, highest) fd_eps where fd_ssm's finite difference means something, and R.

    With R = sqrt(d) x data_extent, the typical size of |z|: below sqrt(machine eps of the dtype) x R
    the step u (|u| = fd_eps) is lost in the rounding of z +- u (and d / (2 fd_eps^2) grows without
    bound); above R the difference s(z+u) - s(z-u) spans the data instead of approximating J u.
    """
    radius = math.sqrt(int(cfg.dataset.get("dim", 2))) * data_extent(cfg.dataset, cfg.sigma)
    # torch loads at the first check: --help and completion stay fast
    import torch

    return math.sqrt(torch.finfo(getattr(torch, cfg.dtype)).eps) * radius, radius, radius
