"""The top-level schema (conf/config.yaml): a run's settings outside the groups, and their pure checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from dsmexp.config.loss import LossConfig
from dsmexp.config.noise import NoiseConfig
from dsmexp.config.optimizer import OptimizerConfig
from dsmexp.config.schedule import ScheduleConfig

PROFILE_NAME = re.compile(r"[A-Za-z0-9._=,+\[\]-]+")  # one path component (experiment/*.yaml)
SIGMA_RANGE = (1e-15, 1e15)  # sigma^2 and 1/sigma^2 stay inside float32's range
MAX_GRID_SIZE = 1024  # score_field.npz: up to 1024^2 points (the model runs on all of them at once)
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")


@dataclass
class Config:
    dataset: Any = MISSING
    loss: LossConfig = MISSING
    model: Any = MISSING
    optimizer: OptimizerConfig = MISSING
    sigma: float = 0.01
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    weighting: str = "sigma2"
    sigma_data: float = 0.5
    noise_samples: int = 100
    antithetic: bool = False
    projections: int = 1
    projection: str = "rademacher"
    fd_eps: float = 0.1
    steps: int = 2500
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    chunk_size: int | None = None
    threads: int | None = None
    diagnostics_every: int = 1
    eval_every: int = 50
    eval_samples: int = 2000
    checkpoint_every: int = 250
    grid_size: int = 64
    compile: bool = False
    logger: Any = MISSING
    kernel: str = "auto"
    profile_name: str = "default"
    overwrite: bool = False


def check_root(cfg: DictConfig, fail: Callable[[str], None]) -> None:
    """The top-level keys, in the order a reader meets them in conf/config.yaml."""
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.objectives.estimators import PROJECTIONS
    from dsmexp.core.objectives.fused import KERNELS

    def check(ok: bool, message: str) -> None:
        if not ok:
            fail(message)

    check(cfg.sigma >= 0, f"sigma={cfg.sigma}: must be >= 0 (0 trains ISM on clean data)")
    check(cfg.sigma == 0 or SIGMA_RANGE[0] <= cfg.sigma <= SIGMA_RANGE[1],
          f"sigma={cfg.sigma}: must be 0 (ISM on clean data) or between {SIGMA_RANGE[0]:g} and "
          f"{SIGMA_RANGE[1]:g} (sigma^2 and 1/sigma^2 must fit in float32)")
    check(cfg.seed >= 0, f"seed={cfg.seed}: must be >= 0")
    check(bool(PROFILE_NAME.fullmatch(cfg.profile_name)) and ".." not in cfg.profile_name,
          f"profile_name={cfg.profile_name}: must be a name of letters, digits and ._-=,+[] "
          "(no / and no ..): presets put it in their sweep directory's name")
    for key in ("noise_samples", "steps", "checkpoint_every", "eval_samples"):
        check(cfg[key] >= 1, f"{key}={cfg[key]}: must be >= 1")
    if cfg.antithetic:
        check(cfg.noise_samples % 2 == 0, f"noise_samples={cfg.noise_samples} with antithetic=true: must be "
              "even (the noise is drawn in (eps, -eps) pairs)")
        check(cfg.schedule.kind == "none", f"antithetic=true with schedule.kind={cfg.schedule.kind}: "
              "antithetic noise is for single-sigma runs")
        check(cfg.sigma > 0, "antithetic=true with sigma=0: there is no noise to pair")
    check(cfg.diagnostics_every >= 0,
          f"diagnostics_every={cfg.diagnostics_every}: must be >= 0 (0: the trained objective only)")
    check(cfg.projections >= 1, f"projections={cfg.projections}: must be >= 1 (projection vectors per point)")
    check(cfg.projection in PROJECTIONS,
          f"projection={cfg.projection}: must be one of {', '.join(PROJECTIONS)}")
    check(cfg.fd_eps > 0, f"fd_eps={cfg.fd_eps}: must be > 0 (radius of the finite-difference step)")
    check(cfg.eval_every >= 0, f"eval_every={cfg.eval_every}: must be >= 0 (0: last step only)")
    check(2 <= cfg.grid_size <= MAX_GRID_SIZE,
          f"grid_size={cfg.grid_size}: must be between 2 and {MAX_GRID_SIZE}")
    check(cfg.chunk_size is None or cfg.chunk_size >= 1,
          f"chunk_size={cfg.chunk_size}: must be >= 1 or null (automatic)")
    check(cfg.threads is None or cfg.threads >= 1, f"threads={cfg.threads}: must be >= 1 or null")
    check(cfg.dtype in DTYPES, f"dtype={cfg.dtype}: must be float32 or float64")
    check(cfg.device in DEVICES, f"device={cfg.device}: must be auto, cpu or cuda")
    check(cfg.kernel in KERNELS, f"kernel={cfg.kernel}: must be one of {', '.join(KERNELS)}")
