"""The model=NAME config group: the MLP's schema and a user's nn.Module (model=custom), with their pure
checks. Whether a custom module imports, builds and returns scores of the right shape is probed once,
by the preflight (dsmexp/train/preflight.py), not here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class MLPConfig:
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [16, 32])
    activation: str = "tanh"
    # with a noise schedule (schedule.kind != none): the network also sees sigma (dsmexp/core/conditioning.py)
    embedding: str = "log"  # log | fourier: how sigma enters
    fourier_features: int = 16
    scale_output: bool = False  # divide the output by sigma (parametrization=score)
    # score | energy (s = -grad E, single-sigma) | noise | data (with a schedule)
    parametrization: str = "score"


@dataclass
class CustomModelConfig:
    """Any torch nn.Module mapping (n, d) points to (n, d) scores, built as target(**kwargs)."""

    name: str = "custom"
    target: str = MISSING
    kwargs: dict[str, Any] = field(default_factory=dict)
    parametrization: str = "score"  # with a schedule, forward(z, sigma (n, 1)): score | noise | data


def _check_mlp(model: DictConfig, fail: Callable[[str], None]) -> None:
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.networks import ACTIVATIONS

    if model.activation not in ACTIVATIONS:
        fail(f"model.activation={model.activation}: must be one of {', '.join(ACTIVATIONS)} "
             "(ISM differentiates the divergence, so the activation needs a second derivative)")
    hidden = list(model.hidden)
    if not all(h >= 1 for h in hidden):
        fail(f"model.hidden={hidden}: must be a list of positive widths ([] is a linear score model)")


def _check_custom(model: DictConfig, fail: Callable[[str], None]) -> None:
    if OmegaConf.is_missing(model, "target"):
        fail("model.target: missing; model=custom needs model.target=package.module.Class")


MODEL_SCHEMAS: dict[str, type] = {"mlp": MLPConfig, "custom": CustomModelConfig}
_CHECKS = {"mlp": _check_mlp, "custom": _check_custom}


def check_model(model: DictConfig, fail: Callable[[str], None]) -> None:
    if model.name not in MODEL_SCHEMAS:
        fail(f"model={model.name}: must be one of {', '.join(MODEL_SCHEMAS)}")
    _CHECKS[model.name](model, fail)
