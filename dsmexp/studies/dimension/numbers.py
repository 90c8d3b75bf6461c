"""The dimension study's numbers, read from its saved runs only: per-step cost, distance to the data
score against wall-clock time, per-point variance of each fitting-term estimator, and the verdict.

The report and its command line are in report.py, the figures in figures.py.

For each d the objectives are compared at one wall-time budget, the shortest total training time among
them, so that every objective is observed up to it: the winner is the objective whose held-out
esm_data_rel (Section 10: esm_data over the mean |grad log p_data|^2) is lowest by then.
Per-point variance of a fitting term is its logged standard error squared times the number of values
it averages (N*M*K): the spread of div s (exact ISM), v^T J v (SSM, SSM-VR), the finite difference
(FD-SSM) and <s, eps>/sigma (DSM-S, Eq. 9) over single points, the quantity of the paper's Prop. 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsmexp.core.objectives.registry import OBJECTIVES
from dsmexp.records.sweeps import Run, load_runs
from dsmexp.studies.dimension.timing import read_timing

DIMS = (2, 8, 32, 128, 512)
# the objectives this study compares, in the order its tables and legends list them (the exact trace,
# its estimators and DSM-S); everything else about each is its registry row
STUDY_LOSSES = ("ism", "ssm_vr", "ssm", "fd_ssm", "dsm_s")


@dataclass
class StudyRun:
    """One run of the study with the numbers the figures and the verdict need."""

    run: Run
    loss: str
    dim: int
    ms_per_step: float  # median over steps of the wall-time increments
    variance: float  # median per-point variance of its fitting term over the second half of training
    eval_time: np.ndarray  # time_s at the held-out evaluations
    eval_rel: np.ndarray  # esm_data_rel there
    wall_time: float

    def best_within(self, budget: float) -> float:
        """The lowest esm_data_rel evaluated by `budget` seconds (NaN if none)."""
        seen = self.eval_rel[self.eval_time <= budget * (1 + 1e-9)]
        return float(seen.min()) if len(seen) else math.nan

    @property
    def final_rel(self) -> float:
        return float(self.eval_rel[-1]) if len(self.eval_rel) else math.nan


def values_per_step(run: Run) -> int:
    """How many single values one step's fitting term averages: N * M (sigma > 0) * K (projections)."""
    cfg = run.config
    points = cfg["dataset"]["n_samples"] * (cfg["noise_samples"] if run.sigma > 0 else 1)
    return points * (cfg.get("projections", 1) if OBJECTIVES[run.loss].estimator else 1)


def study_run(run: Run) -> StudyRun:
    m = run.metrics
    steps = len(m["step"])
    increments = np.diff(np.concatenate([[0.0], m["time_s"]]))
    se = m.get(f"{OBJECTIVES[run.loss].fit_column}_se", np.full(steps, math.nan))[steps // 2:]
    finite = se[np.isfinite(se)]
    variance = float(np.median(finite**2)) * values_per_step(run) if len(finite) else math.nan
    evaluated = np.isfinite(m["esm_data_rel"])
    ms = 1000 * float(np.median(increments[1:])) if steps > 1 else math.nan
    return StudyRun(run, run.loss, int(run.config["dataset"]["dim"]), ms, variance, m["time_s"][evaluated],
                    m["esm_data_rel"][evaluated], float(m["time_s"][-1]) if steps else math.nan)


Study = dict[tuple[str, int], StudyRun]


def load_study(sweep_dir: Path) -> Study:
    """(loss, d) -> its run, for the study's objectives (the first seed when several ran)."""
    study: Study = {}
    for run in load_runs(sweep_dir):
        if run.loss in STUDY_LOSSES and len(run.metrics["step"]):
            item = study_run(run)
            study.setdefault((item.loss, item.dim), item)
    return study


@dataclass
class Timing:
    """timing.json of the study (timing.py): ms per step measured in one process."""

    by_d: dict[str, dict[int, float]]  # loss -> {d: median ms per step}
    by_d_iqr: dict[str, dict[int, tuple[float, float]]]  # loss -> {d: (q1, q3)}; empty in older files
    by_width: dict[str, dict[str, float]]  # loss -> {"w1-w2": median ms per step} at width_dim
    width_dim: int
    threads: int
    variance: dict[str, dict[int, dict[str, float]]]  # loss -> {d: {"estimator", "exact"}} on the same z

    @classmethod
    def load(cls, sweep_dir: Path) -> Timing | None:
        raw = read_timing(sweep_dir)
        if raw is None:
            return None
        by_d = {loss: {int(d): ms for d, ms in row.items()} for loss, row in raw["by_d"].items()}
        iqr = {loss: {int(d): tuple(q) for d, q in row.items()}
               for loss, row in raw.get("by_d_iqr", {}).items()}
        variance = {loss: {int(d): v for d, v in row.items()}
                    for loss, row in raw.get("variance", {}).items()}
        return cls(by_d, iqr, raw["by_width"], raw["width_dim"], raw["threads"], variance)

    def ms(self, loss: str, dim: int) -> float:
        return self.by_d.get(loss, {}).get(dim, math.nan)


@dataclass
class Verdict:
    """One row of the answer table."""

    dim: int
    budget: float  # seconds: the shortest total training time among the objectives at this d
    best: dict[str, float]  # objective -> lowest esm_data_rel reached within the budget
    winner: str
    ism_over_ssm_vr: float  # ms/step of exact ISM over SSM-VR (timing.json when there is one)

    @classmethod
    def at(cls, study: Study, dim: int, timing: Timing | None = None) -> Verdict | None:
        runs = {loss: study[(loss, dim)] for loss in STUDY_LOSSES if (loss, dim) in study}
        if not runs:
            return None
        budget = min(r.wall_time for r in runs.values())
        best = {loss: r.best_within(budget) for loss, r in runs.items()}
        finite = {k: v for k, v in best.items() if math.isfinite(v)}
        winner = min(finite, key=finite.get) if finite else "none"
        if timing is not None:
            ratio = timing.ms("ism", dim) / timing.ms("ssm_vr", dim)
        elif "ism" in runs and "ssm_vr" in runs:
            ratio = runs["ism"].ms_per_step / runs["ssm_vr"].ms_per_step
        else:
            ratio = math.nan
        return cls(dim, budget, best, winner, ratio)


def verdicts(study: Study, timing: Timing | None = None) -> list[Verdict]:
    dims = sorted({d for _, d in study})
    return [v for v in (Verdict.at(study, d, timing) for d in dims) if v is not None]
