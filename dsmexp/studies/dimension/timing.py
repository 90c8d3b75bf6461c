"""Measurements made after training, in one process, into timing.json in the study's sweep directory
(the figures read that file):

- Figure 5: for each d, one Trainer per objective built from the study's own config, their training
  steps timed interleaved (warm-up first; studies/stopwatch.py, torch.utils.benchmark) on one thread,
  so that load from other processes hits every objective alike; the median milliseconds per step and
  its quartiles (by_d, by_d_iqr), which the figure draws as bars so that timing noise is not read as a
  result. The exact trace against the network's width is timed the same way at d = 512 for exact ISM
  and SSM-VR.
- Figure 7: each run's final network (checkpoint.pt) takes one step with every diagnostic on, so its
  estimator's fitting term and the exact trace div s are computed on the same points z: their per-point
  variances (standard error squared times the values averaged), as the paper compares DSM with ISM.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dsmexp.config import compose
from dsmexp.core.objectives.registry import OBJECTIVES
from dsmexp.records import artifacts
from dsmexp.records.metrics_file import COLUMNS
from dsmexp.records.sweeps import load_runs
from dsmexp.studies.stopwatch import summary_ms, time_interleaved
from dsmexp.train.trainer import Trainer, prepare_cpu

TIMING_FILE = "timing.json"
WIDTHS = ((8, 16), (16, 32), (32, 64), (64, 128), (128, 256))
WIDTH_DIM = 512


def study_config(profile: str, loss: str, dim: int, *overrides: str):
    """The config a study run of `loss` at `dim` gets (evaluation only at its last step)."""
    experiment = "dimension_dsm_s" if OBJECTIVES[loss].needs_noise else "dimension"  # its pilot's sigma
    return compose([f"experiment={experiment}", f"+profile={profile}", f"loss={loss}", f"dataset.dim={dim}",
                    "eval_every=0", "steps=1000000", *overrides])


def round_robin(steps: dict[str, Callable[[int], object]], repeats: int,
                warmup: int) -> dict[str, dict[str, float]]:
    """{name: {"median", "q1", "q3", "min", "max"}} in milliseconds: `warmup` untimed steps of each, then
    `repeats` rounds of one timed step of each in turn (a step's argument counts up, as in training)."""
    counters = {name: itertools.count() for name in steps}
    calls = {name: (lambda s=step, c=counters[name]: s(next(c))) for name, step in steps.items()}
    return {name: summary_ms(m) for name, m in time_interleaved(calls, repeats, warmup).items()}


def trainers(profile: str, losses: list[str], dim: int, *overrides: str) -> dict[str, Trainer]:
    tmp = Path(tempfile.gettempdir())
    return {loss: Trainer(study_config(profile, loss, dim, *overrides), tmp) for loss in losses}


def measure(profile: str, dims: list[int], losses: list[str], repeats: int, warmup: int,
            overrides: list[str] = (), widths: tuple[tuple[int, int], ...] = WIDTHS,
            threads: int = 1) -> dict:
    """{"by_d": {loss: {d: median ms}}, "by_d_iqr": {loss: {d: [q1, q3]}}, "by_width": {loss: {"w1-w2":
    median ms}}, ...} for the study's settings."""
    prepare_cpu(threads)
    by_d: dict[str, dict[str, float]] = {loss: {} for loss in losses}
    by_d_iqr: dict[str, dict[str, list[float]]] = {loss: {} for loss in losses}
    for dim in dims:
        timed = trainers(profile, losses, dim, *overrides)
        for loss, ms in round_robin({k: t.step for k, t in timed.items()}, repeats, warmup).items():
            by_d[loss][str(dim)] = ms["median"]
            by_d_iqr[loss][str(dim)] = [ms["q1"], ms["q3"]]
    by_width: dict[str, dict[str, float]] = {}
    width_losses = [loss for loss in ("ism", "ssm_vr") if loss in losses]
    for first, second in widths:
        hidden = f"model.hidden=[{first},{second}]"
        timed = trainers(profile, width_losses, WIDTH_DIM, *overrides, hidden)
        for loss, ms in round_robin({k: t.step for k, t in timed.items()}, repeats, warmup).items():
            by_width.setdefault(loss, {})[f"{first}-{second}"] = ms["median"]
    return {"by_d": by_d, "by_d_iqr": by_d_iqr, "by_width": by_width, "width_dim": WIDTH_DIM,
            "repeats": repeats, "warmup": warmup, "threads": torch.get_num_threads(), "profile": profile}


def same_points_variance(sweep_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{loss: {d: {"estimator": v, "exact": v}}}: per-point variances at each run's final network."""
    prepare_cpu(1)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for run in load_runs(sweep_dir):
        state = artifacts.load_checkpoint(run.run_dir / artifacts.CHECKPOINT_FILE)
        if state is None or run.status != "completed":
            continue
        cfg = OmegaConf.load(run.run_dir / ".hydra" / "config.yaml")
        cfg.diagnostics_every, cfg.eval_every, cfg.steps = 1, 0, 1_000_000
        trainer = Trainer(cfg, Path(tempfile.gettempdir()))
        trainer.model.load_state_dict(state["model"])
        row = dict(zip(COLUMNS[1:], trainer.step(0).tolist()))
        points = cfg.dataset.n_samples * (cfg.noise_samples if cfg.sigma > 0 else 1)
        column, count = {"ism": ("fit_ism_se", 1), "dsm_s": ("fit_dsm_se", 1)}.get(
            run.loss, ("fit_est_se", cfg.projections))
        out.setdefault(run.loss, {})[str(cfg.dataset.dim)] = {
            "estimator": row[column] ** 2 * points * count, "exact": row["fit_ism_se"] ** 2 * points}
    return out


def write_timing(sweep_dir: Path, result: dict) -> Path:
    path = Path(sweep_dir) / TIMING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def read_timing(sweep_dir: Path) -> dict | None:
    path = Path(sweep_dir) / TIMING_FILE
    return json.loads(path.read_text()) if path.exists() else None
