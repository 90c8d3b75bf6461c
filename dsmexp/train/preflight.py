"""The preflight: every check of a run that touches the machine or the disk, after the pure checks of
its config (config.validate), before anything is written. Called once per run and process by the
command line, the sweeper and run() (docs/architecture.md, Checks before a run).

In order: the config's values; the machine (a CUDA GPU for device=cuda, the logger's package and server,
the user's custom model imported, built and called once, the memory the run needs, the fused kernel's
cache and, for kernel=fused, its build); the run directory (a run dsmexp can resume or skip, not in use
by another process, and, for a single run, a directory that can be created and written).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dsmexp.config import validate
from dsmexp.core.networks import CustomModelError, build_custom
from dsmexp.core.objectives import fused, fused_build
from dsmexp.errors import ConfigError, RunBusy
from dsmexp.records.identity import check_existing_run
from dsmexp.records.runlock import is_busy
from dsmexp.safe_io import make_run_dir, write_failed
from dsmexp.train.memory import memory_check
from dsmexp.train.tracking import check_logger

_handed: dict[str, dict | None] = {}  # checked by the command line or the sweeper, for the run() that follows


def preflight(cfg: DictConfig, run_dir: Path | None = None, writable: bool = False,
              hand_over: bool = False) -> dict | None:
    """Check cfg, this machine and run_dir (when given); raise a DsmexpError with one line on the first
    problem. Returns the summary of a finished run with these settings in run_dir (to be skipped), else
    None. writable=True also makes run_dir and checks it can be written (a single run; Hydra writes there
    next). hand_over=True (the command line, the sweeper) leaves the result for the next preflight of the
    same config and directory in this process, the one run() makes, which then returns it unchecked: a
    run is checked once, where it starts."""
    key = _key(cfg, run_dir)
    if not hand_over and key in _handed:
        return _handed.pop(key)
    validate(cfg)
    check_machine(cfg)
    finished = None
    if run_dir is not None:
        finished = check_run_dir(cfg, Path(run_dir), writable)
    if hand_over:
        _handed[key] = finished
    return finished


def check_machine(cfg: DictConfig) -> None:
    """What this machine must allow for the run (see the module docstring)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is "
                          "False); use device=cpu or device=auto")
    problem = check_logger(cfg.logger)
    if problem:
        raise ConfigError(problem)
    custom_params = None
    if cfg.model.name == "custom":
        custom_params = probe_custom_model(cfg.model, int(cfg.dataset.get("dim", 2)),
                                           conditional=cfg.schedule.kind != "none")
    memory_check(cfg, custom_params)  # the machine's memory, before anything is allocated
    if cfg.kernel != "torch" and fused.not_applicable(cfg) is None:
        problem = fused_build.cache_problem()
        if problem:
            raise ConfigError(problem)
    if cfg.kernel == "fused":
        fused.choose(cfg)  # builds it if needed; ConfigError when it cannot run


def probe_custom_model(model: DictConfig, dim: int, conditional: bool = False) -> int:
    """Import, build and call the user's module once on a few points: one line for each way it fails.
    Returns its number of parameters."""
    try:
        module = build_custom(model.target, OmegaConf.to_container(model.kwargs), dim, check=True,
                              conditional=conditional)
    except CustomModelError as err:
        raise ConfigError(str(err)) from None
    return sum(p.numel() for p in module.parameters())


def check_run_dir(cfg: DictConfig, run_dir: Path, writable: bool = False) -> dict | None:
    """The run directory holds this run or nothing dsmexp must not touch, and nobody else uses it."""
    finished = check_existing_run(cfg, run_dir)
    busy = is_busy(run_dir)
    if busy:
        raise RunBusy(busy)
    if writable and finished is None:
        make_run_dir(run_dir)  # Hydra would make it next
        try:
            with tempfile.TemporaryFile(dir=run_dir):
                pass
        except OSError as err:
            raise write_failed(run_dir, err, "write into") from None
    return finished


def _key(cfg: DictConfig, run_dir: Path | None) -> str:
    plain = OmegaConf.to_container(cfg, resolve=False)  # a missing value is reported by validate, not here
    plain.pop("hydra", None)
    text = OmegaConf.to_yaml(OmegaConf.create(plain))
    where = os.path.abspath(run_dir) if run_dir is not None else ""
    return hashlib.sha256(f"{text}\0{where}".encode()).hexdigest()
