"""The optimizer=NAME config group: one schema for every optimizer (the names are core.optimizers'
rows), with its pure checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0


def check_optimizer(opt: DictConfig, fail: Callable[[str], None]) -> None:
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.optimizers import OPTIMIZERS

    if opt.name not in OPTIMIZERS:
        fail(f"optimizer={opt.name}: must be one of {', '.join(OPTIMIZERS)}")
    if opt.lr <= 0:
        fail(f"optimizer.lr={opt.lr}: must be > 0")
    if opt.weight_decay < 0:
        fail(f"optimizer.weight_decay={opt.weight_decay}: must be >= 0")
    if not (len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas)):
        fail(f"optimizer.betas={list(opt.betas)}: must be two numbers in [0, 1)")
    if opt.momentum < 0:
        fail(f"optimizer.momentum={opt.momentum}: must be >= 0")
