"""Typed configuration schema (registered in Hydra's ConfigStore) and the checks run before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute: works from any directory
ACTIVATIONS = ("tanh", "silu", "softplus", "sigmoid")
LOSSES = ("ism", "dsm", "dsm_s")


@dataclass
class HalfMoonConfig:
    name: str = "half_moon"
    n_samples: int = 1000
    noise: float = 0.05


@dataclass
class SwissRollConfig:
    name: str = "swiss_roll"
    n_samples: int = 1000
    noise: float = 0.5
    scale: float = 0.1


@dataclass
class GaussianConfig:
    name: str = "gaussian"
    n_samples: int = 1000
    dim: int = 2
    mean: Any = 0.0
    scale: Any = 1.0
    cov: Any = None


DATASET_SCHEMAS = {"half_moon": HalfMoonConfig, "swiss_roll": SwissRollConfig, "gaussian": GaussianConfig}


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class MLPConfig:
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [16, 32])
    activation: str = "tanh"


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0


@dataclass
class Config:
    dataset: Any = MISSING
    loss: LossConfig = MISSING
    model: MLPConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    sigma: float = 0.01
    noise_samples: int = 100
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
    kernel: str = "auto"
    profile_name: str = "default"
    overwrite: bool = False


class ConfigError(CompactHydraException):
    """A bad setting, reported as one line naming the key, before any run file is written."""

    def __init__(self, message: str, sweep_skippable: bool = False) -> None:
        super().__init__(message)
        self.sweep_skippable = sweep_skippable


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent) and the run-directory resolver into OmegaConf."""
    cs = ConfigStore.instance()
    cs.store(name="dsmexp_schema", node=Config)
    for name, schema in DATASET_SCHEMAS.items():
        cs.store(group="schema/dataset", name=name, node=schema)
    cs.store(group="schema/loss", name="loss", node=LossConfig)
    cs.store(group="schema/model", name="mlp", node=MLPConfig)
    cs.store(group="schema/optimizer", name="optimizer", node=OptimizerConfig)
    if not OmegaConf.has_resolver("dirname"):
        OmegaConf.register_new_resolver("dirname", run_dirname)


def run_dirname(overrides: str) -> str:
    """A run directory name from Hydra's override_dirname, with numbers written by value.

    `sigma=1e-2` and `sigma=0.01` name the same directory (`sigma=0.01`); whole numbers lose a trailing
    `.0`; anything that is not a number (lists, names) is kept as typed.
    """
    if not overrides:
        return "default"
    return ",".join(_canonical_item(item) for item in _split_items(overrides))


def _split_items(text: str) -> list[str]:
    """Split `a=1,b=[2,3],c=x` at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _canonical_item(item: str) -> str:
    key, sep, value = item.partition("=")
    try:
        number = float(value)
    except ValueError:
        return item
    if not math.isfinite(number) or value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return item
    if number.is_integer() and abs(number) < 1e15:
        return f"{key}{sep}{int(number)}"
    return f"{key}{sep}{number!r}"


def _fail(message: str, sweep_skippable: bool = False) -> None:
    raise ConfigError(message, sweep_skippable)


def _check(ok: bool, message: str) -> None:
    if not ok:
        _fail(message)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad setting, naming the key and what is allowed."""
    _check(cfg.sigma >= 0, f"sigma={cfg.sigma}: must be >= 0 (0 trains ISM on clean data)")
    _check(cfg.loss.name in LOSSES, f"loss={cfg.loss.name}: must be one of {', '.join(LOSSES)}")
    if cfg.loss.name in ("dsm", "dsm_s") and cfg.sigma == 0:
        _fail(f"sigma=0 with loss={cfg.loss.name}: DSM needs sigma > 0 "
              "(its target is -eps/sigma); use loss=ism to train on clean data", sweep_skippable=True)
    for key in ("noise_samples", "steps", "diagnostics_every", "checkpoint_every", "eval_samples"):
        _check(cfg[key] >= 1, f"{key}={cfg[key]}: must be >= 1")
    _check(cfg.eval_every >= 0, f"eval_every={cfg.eval_every}: must be >= 0 (0: last step only)")
    _check(cfg.grid_size >= 2, f"grid_size={cfg.grid_size}: must be >= 2")
    _check(cfg.chunk_size is None or cfg.chunk_size >= 1,
           f"chunk_size={cfg.chunk_size}: must be >= 1 or null (automatic)")
    _check(cfg.threads is None or cfg.threads >= 1, f"threads={cfg.threads}: must be >= 1 or null")
    _check(cfg.dtype in ("float32", "float64"), f"dtype={cfg.dtype}: must be float32 or float64")
    _validate_device(cfg.device)
    _validate_model(cfg.model)
    _validate_optimizer(cfg.optimizer)
    _validate_dataset(cfg.dataset)
    from dsmexp import fused  # kernel=fused is checked (and built) here, before any work

    fused.check_config(cfg)


def _validate_device(device: str) -> None:
    _check(device in ("auto", "cpu", "cuda"), f"device={device}: must be auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        _fail("device=cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "use device=cpu or device=auto")


def _validate_model(model: DictConfig) -> None:
    _check(model.activation in ACTIVATIONS,
           f"model.activation={model.activation}: must be one of {', '.join(ACTIVATIONS)} "
           "(ISM differentiates the divergence, so the activation needs a second derivative)")
    hidden = list(model.hidden)
    _check(all(h >= 1 for h in hidden),
           f"model.hidden={hidden}: must be a list of positive widths ([] is a linear score model)")


def _validate_optimizer(opt: DictConfig) -> None:
    _check(opt.name in ("adamw", "adam", "sgd"), f"optimizer={opt.name}: must be adamw, adam or sgd")
    _check(opt.lr > 0, f"optimizer.lr={opt.lr}: must be > 0")
    _check(opt.weight_decay >= 0, f"optimizer.weight_decay={opt.weight_decay}: must be >= 0")
    _check(len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas),
           f"optimizer.betas={list(opt.betas)}: must be two numbers in [0, 1)")
    _check(opt.momentum >= 0, f"optimizer.momentum={opt.momentum}: must be >= 0")


def _validate_dataset(ds: DictConfig) -> None:
    name = ds.name
    _check(ds.n_samples >= 2, f"dataset.n_samples={ds.n_samples}: must be >= 2")
    if name in ("half_moon", "swiss_roll"):
        _check(ds.noise >= 0, f"dataset.noise={ds.noise}: must be >= 0")
    if name == "swiss_roll":
        _check(ds.scale > 0, f"dataset.scale={ds.scale}: must be > 0")
    if name == "gaussian":
        _validate_gaussian(ds)


def _validate_gaussian(ds: DictConfig) -> None:
    dim = ds.dim
    _check(dim >= 1, f"dataset.dim={dim}: must be >= 1")
    for key in ("mean", "scale"):
        value = ds[key]
        if isinstance(value, ListConfig):
            _check(len(value) == dim, f"dataset.{key}: a list must have dataset.dim={dim} entries")
        else:
            _check(isinstance(value, (int, float)), f"dataset.{key}={value}: must be a number or a list")
    scales = list(ds.scale) if isinstance(ds.scale, ListConfig) else [ds.scale]
    _check(all(s > 0 for s in scales), f"dataset.scale={ds.scale}: must be > 0")
    if ds.cov is not None:
        cov = torch.tensor(OmegaConf.to_container(ds.cov), dtype=torch.float64)
        _check(cov.shape == (dim, dim), f"dataset.cov: must be a {dim} x {dim} list of lists")
        symmetric = torch.allclose(cov, cov.T)
        _check(symmetric and bool(torch.linalg.eigvalsh(cov).min() > 0),
               "dataset.cov: must be symmetric positive definite")
