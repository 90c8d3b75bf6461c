"""The variance study's numbers, from its sweep directory only (every run's metrics.csv): per run the
gradient variance over the second half of the steps and the final distance to the data score.

A study variant is an objective, or DSM-S with antithetic noise ("dsm_s+anti").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsmexp.records.sweeps import Run, load_runs

VARIANTS = ("dsm_s", "dsm_cv", "dsm_s+anti", "tsm", "ism")  # the order of tables and legends
LABELS = {"dsm_s": "DSM-S", "dsm_cv": "DSM-CV", "dsm_s+anti": "DSM-S antithetic", "tsm": "TSM",
          "ism": "ISM"}
COLOURS = {"dsm_s": "#ff7f0e", "dsm_cv": "#e377c2", "dsm_s+anti": "#8c564b", "tsm": "#17becf",
           "ism": "#1f77b4"}
SIGMAS = (1e-4, 1e-3, 1e-2, 1e-1)


def variant(run: Run) -> str:
    return f"{run.loss}+anti" if run.config.get("antithetic") else run.loss


@dataclass
class StudyRun:
    run: Run

    @property
    def variant(self) -> str:
        return variant(self.run)

    @property
    def sigma(self) -> float:
        return float(self.run.sigma)

    @property
    def seed(self) -> int:
        return self.run.seed

    def late(self, column: str) -> float:
        """The median of a column over the second half of the steps (its finite values)."""
        values = self.run.metrics.get(column)
        if values is None:
            return math.nan
        half = values[len(values) // 2:]
        half = half[np.isfinite(half)]
        return float(np.median(half)) if len(half) else math.nan

    def final(self, column: str) -> float:
        """The column at the last step where it was computed (esm_data: the last evaluation)."""
        values = self.run.metrics.get(column)
        finite = values[np.isfinite(values)] if values is not None else np.array([])
        return float(finite[-1]) if len(finite) else math.nan

    def first(self, column: str) -> float:
        values = self.run.metrics.get(column)
        finite = values[np.isfinite(values)] if values is not None else np.array([])
        return float(finite[0]) if len(finite) else math.nan


def load_study(sweep_dir: Path) -> list[StudyRun]:
    """The sweep's finished runs that belong to the study."""
    return [StudyRun(r) for r in load_runs(sweep_dir)
            if r.status == "completed" and variant(r) in VARIANTS]


def table(runs: list[StudyRun], value) -> dict[tuple[str, float], list[float]]:
    """{(variant, sigma): [value(run) per seed, in seed order]}."""
    out: dict[tuple[str, float], list[float]] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        out.setdefault((run.variant, run.sigma), []).append(value(run))
    return out


def by_seed(runs: list[StudyRun]) -> dict[tuple[str, float, int], StudyRun]:
    return {(r.variant, r.sigma, r.seed): r for r in runs}


def slope(sigmas: list[float], values: list[float]) -> float:
    """The least-squares slope of log value against log sigma (finite, positive values only)."""
    pairs = [(math.log(s), math.log(v)) for s, v in zip(sigmas, values) if v > 0 and math.isfinite(v)]
    if len(pairs) < 2:
        return math.nan
    xs, ys = np.array(pairs).T
    return float(np.polyfit(xs, ys, 1)[0])
