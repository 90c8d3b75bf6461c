"""The noise node (conf/config.yaml): the kernel q(z | x) = k_sigma(z - x) of the noised data
(dsmexp/core/noise.py) and its pure checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

# the objectives whose target or coefficient is the Gaussian kernel's own (targets.py)
GAUSSIAN_ONLY = ("dsm_cv", "tsm_mix")


@dataclass
class NoiseConfig:
    kernel: str = "gaussian"
    df: float = 3.0


def check_noise(cfg: DictConfig, fail: Callable[[str], None]) -> None:
    """noise.kernel and noise.df, and what another kernel cannot be combined with yet."""
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.noise import KERNELS

    noise = cfg.noise
    if noise.kernel not in KERNELS:
        fail(f"noise.kernel={noise.kernel}: must be one of {', '.join(KERNELS)}")
    if not noise.df > 0:
        fail(f"noise.df={noise.df}: must be > 0 (the Student-t kernel's degrees of freedom)")
    if noise.kernel == "gaussian":
        return
    from dsmexp.config.dataset import DATASET_SCHEMAS

    schema = DATASET_SCHEMAS.get(cfg.dataset.name)
    why = (schema.no_kernel_reference(cfg.dataset, noise.kernel) if schema is not None and cfg.sigma > 0
           else None)
    if why is not None:
        fail(why)
    if cfg.schedule.kind != "none":
        fail(f"noise.kernel={noise.kernel} with schedule.kind={cfg.schedule.kind}: the noise-conditional "
             "runs use the Gaussian kernel; set noise.kernel=gaussian")
    if cfg.loss.name in GAUSSIAN_ONLY:
        fail(f"noise.kernel={noise.kernel} with loss={cfg.loss.name}: its target (and tsm_mix's kappa) is "
             "the Gaussian kernel's (-eps / sigma); with another kernel use dsm, dsm_s, tsm, ism or an "
             "estimator")
