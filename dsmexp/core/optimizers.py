"""The optimizers a run can use (optimizer=NAME), one row each: how to build it from its config group and
how many per-parameter state tensors it keeps (the memory estimate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Optimizer:
    build: Callable[[Any, Any], torch.optim.Optimizer]  # (parameters, config group) -> optimizer
    state: Callable[[Any], int]  # config group -> per-parameter state tensors


OPTIMIZERS: dict[str, Optimizer] = {
    "adamw": Optimizer(lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                                             weight_decay=cfg.weight_decay), lambda cfg: 2),
    "adam": Optimizer(lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                                           weight_decay=cfg.weight_decay), lambda cfg: 2),
    "sgd": Optimizer(lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                         weight_decay=cfg.weight_decay),
                     lambda cfg: 1 if cfg.momentum > 0 else 0),
}


def build_optimizer(params: Any, cfg: Any) -> torch.optim.Optimizer:
    """The optimizer the `optimizer` config group names, over params."""
    return OPTIMIZERS[cfg.name].build(params, cfg)
