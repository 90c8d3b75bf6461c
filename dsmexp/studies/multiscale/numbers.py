"""The multi-scale study's numbers, from its sweep directory only: every run's levels.csv, its final
per-level distances to the exact score, its per-level fitting-term variances, and two measurements made
after training (measure.json, written by make.py): each run's gradient norm per level at its final
network, and each objective's milliseconds per trained-alone step.

Runs are grouped by data (half-moon, the 2-D mixture, the half-moon embedded in R^8) and schedule
(sigma_min = 0.01 or 0.001, sigma_max = 1, 10 geometric levels).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dsmexp.records.levels_file import LEVELS_FILE, load_levels
from dsmexp.records.sweeps import Run, load_runs

STUDY_LOSSES = ("dsm", "dsm_s", "ism", "hybrid", "ssm_vr")  # the order of tables and legends
MEASURE_FILE = "measure.json"


@dataclass
class StudyRun:
    run: Run
    levels: pd.DataFrame  # levels.csv
    gradients: list[float] = field(default_factory=list)  # per level, at the final network (measure.json)

    @property
    def loss(self) -> str:
        return self.run.loss

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def group(self) -> tuple[str, str]:
        return group_of(self.run.config)

    @property
    def sigmas(self) -> np.ndarray:
        return self.levels.loc[self.levels.step == self.levels.step.min(), "sigma"].to_numpy()

    def final(self, column: str) -> np.ndarray:
        """Per level, the column at the last evaluation (esm, esm_rel, ...)."""
        evaluated = self.levels.dropna(subset=[column])
        if evaluated.empty:
            return np.full(len(self.sigmas), math.nan)
        last = evaluated[evaluated.step == evaluated.step.max()].sort_values("level")
        return last[column].to_numpy()

    def variance(self, term: str) -> np.ndarray:
        """Per level, the per-point variance of a fitting term (fit_ism or fit_dsm: its standard error
        squared times the level's points), median over the second half of the steps."""
        table = self.levels[self.levels.step >= self.levels.step.max() / 2]
        per_point = table[f"{term}_se"] ** 2 * table["count"]
        return per_point.groupby(table["level"]).median().to_numpy()

    def score_power(self) -> np.ndarray:
        """Per level, the network's own E|s|^2 (twice the norm), median over the second half."""
        table = self.levels[self.levels.step >= self.levels.step.max() / 2]
        return (2 * table["norm"]).groupby(table["level"]).median().to_numpy()


def group_of(config: dict) -> tuple[str, str]:
    """(data, schedule) labels of a run's config."""
    ds = config["dataset"]
    data = ds["name"] if int(ds.get("dim", 2)) == 2 else f"{ds['name']} d={ds['dim']}"
    s = config["schedule"]
    return data, f"sigma {s['sigma_min']:g}..{s['sigma_max']:g}"


def load_study(sweep_dir: Path) -> list[StudyRun]:
    """Every run of the sweep that wrote levels.csv, with measure.json's gradient norms when there."""
    measured = read_measure(sweep_dir) or {}
    gradients = measured.get("gradients", {})
    out = []
    for run in load_runs(sweep_dir):
        if not (run.run_dir / LEVELS_FILE).exists():
            continue
        name = run.run_dir.name
        out.append(StudyRun(run, load_levels(run.run_dir), gradients.get(name, [])))
    return out


def runs_of(study: list[StudyRun], group: tuple[str, str], loss: str) -> list[StudyRun]:
    return sorted((r for r in study if r.group == group and r.loss == loss), key=lambda r: r.seed)


def groups(study: list[StudyRun]) -> list[tuple[str, str]]:
    return sorted({r.group for r in study}, key=lambda g: (g[0].count("d="), g[0], g[1]))


def read_measure(sweep_dir: Path) -> dict | None:
    path = Path(sweep_dir) / MEASURE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_measure(sweep_dir: Path, result: dict) -> Path:
    path = Path(sweep_dir) / MEASURE_FILE
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path
