"""One training step of a noise-conditional run across a schedule (schedule.kind geometric or continuous),
for the Trainer (trainer.py), which owns the model, the optimiser, the files and the loop.

Each step draws, from the run's noise generator, eps for the M x N noise draws (times L with
sampling=all), then each point's level (schedules.Schedule.draw), then an estimator's projections, and
computes every term overall and per level (objectives/levels.multiscale_terms). At evaluation steps the
held-out sample is scored at every level against the exact score of q_sigma there
(evaluation.LevelsHeldOut). The step returns one vector: metrics.csv's row (METRICS, EVAL_METRICS) then
the levels.csv block (L rows of LEVEL_COLUMNS after step), so the loop copies one tensor to the host.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import Tensor

from dsmexp.core.conditioning import NoiseConditional
from dsmexp.core.datasets import Dataset
from dsmexp.core.evaluation import LEVEL_EVAL, LevelsHeldOut
from dsmexp.core.kernels.conditional import ConditionalKernel
from dsmexp.core.objectives.estimators import draw_projections
from dsmexp.core.objectives.levels import multiscale_terms
from dsmexp.core.objectives.registry import objective
from dsmexp.core.schedules import Schedule, weights
from dsmexp.records.levels_file import LEVEL_COLUMNS


class ScheduleStep:
    """The multi-scale step of one run (see the module docstring)."""

    def __init__(self, cfg: DictConfig, model: NoiseConditional, dataset: Dataset, eval_seed: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.cfg, self.model = cfg, model
        self.schedule = Schedule.from_config(cfg.schedule)
        self.kernel = ConditionalKernel(model)
        self.sigmas = self.schedule.level_sigmas().to(device)
        self.level_weights = weights(cfg.weighting, self.sigmas, cfg.sigma_data)
        self.held_out = LevelsHeldOut(dataset, self.sigmas, cfg.eval_samples, eval_seed, device, dtype)
        self.no_eval = torch.full((self.schedule.levels, len(LEVEL_EVAL)), math.nan, dtype=torch.float64,
                                  device=device)
        self.device, self.dtype = device, dtype

    @property
    def levels(self) -> int:
        return self.schedule.levels

    def step(self, x: Tensor, noise: torch.Generator, step: int, evaluate: bool,
             chunk: int) -> tuple[Tensor, list]:
        """(the row vector described in the module docstring, the trained gradient) for this step."""
        cfg = self.cfg
        draws = cfg.noise_samples * x.shape[0]
        points = draws * self.schedule.points_per_draw()
        eps = torch.randn((x.shape[1], points), generator=noise, device=self.device, dtype=self.dtype)
        sigma, level = self.schedule.draw(draws, noise, self.device)
        v = None
        if objective(cfg.loss.name).estimator:  # drawn after eps and the levels
            v = draw_projections(cfg.projection, cfg.projections, x.shape[1], points, noise, self.device,
                                 self.dtype)
        trained_only = cfg.diagnostics_every == 0
        diagnostics = not trained_only and step % cfg.diagnostics_every == 0
        lam = weights(cfg.weighting, sigma, cfg.sigma_data)
        terms = multiscale_terms(self.kernel, x, eps, sigma, level, lam, self.levels, cfg.loss.name,
                                 cfg.loss.get("switch_sigma"), diagnostics, chunk, v=v,
                                 trained_only=trained_only, draws=draws)
        table = self.held_out.esm(self.model) if evaluate else self.no_eval
        block = torch.cat([torch.full((self.levels, 1), float(step), dtype=torch.float64, device=self.device),
                           torch.arange(self.levels, dtype=torch.float64, device=self.device)[:, None],
                           self.sigmas[:, None], self.level_weights[:, None], terms.levels, table], 1)
        row = torch.cat([terms.metrics, self.held_out.metrics(table), block.reshape(-1)])
        return row, terms.grad

    @staticmethod
    def split(values: list[float], metrics: int) -> tuple[list[float], list[list[float]]]:
        """A step's host row as (metrics.csv values, levels.csv rows)."""
        width = len(LEVEL_COLUMNS)
        block = values[metrics:]
        return values[:metrics], [block[i:i + width] for i in range(0, len(block), width)]

