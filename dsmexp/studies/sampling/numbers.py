"""The sampling study's numbers, from saved files only: each toy run's final distance to the exact score
at its smallest level (levels.csv) and every sample's quality.json (RUN_DIR/samples/)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsmexp.records.levels_file import load_levels
from dsmexp.records.sweeps import Run, load_runs
from dsmexp.studies.multiscale.numbers import StudyRun

STUDY_LOSSES = ("dsm", "dsm_s", "ism", "hybrid", "ssm_vr")
STUDY_SAMPLERS = ("langevin", "annealed_langevin", "reverse_sde", "pf_ode", "pc")
EXACT = "exact"  # the column of the exact score beside the objectives
DIFFUSION_SIGMA_MIN = 0.01  # of the multi-scale study's two schedules, the one its samplers walk


@dataclass
class Cell:
    """One sampler on one score, over the training seeds: each run's quality.json mean (over its sampler
    seeds) averaged over the runs, the standard error over the runs (over the sampler seeds when there is
    one run), the min and max over the runs (the seed band), and the first run's first samples with the
    data they are measured against."""

    mean: dict
    se: dict
    lo: dict
    hi: dict
    runs: int
    samples: np.ndarray
    data: np.ndarray


def combine(reports: list[dict], samples: np.ndarray, data: np.ndarray) -> Cell:
    """A Cell from the quality.json of each training seed's run (the first one's samples)."""
    if len(reports) == 1:
        only = reports[0]
        return Cell(only["mean"], only["se"], only["mean"], only["mean"], 1, samples, data)
    keys = sorted({k for r in reports for k in r["mean"]})
    values = {k: np.array([np.nan if r["mean"].get(k) is None else r["mean"][k] for r in reports], float)
              for k in keys}
    return Cell({k: float(np.mean(v)) for k, v in values.items()},
                {k: float(np.std(v, ddof=1) / math.sqrt(len(v))) for k, v in values.items()},
                {k: float(np.min(v)) for k, v in values.items()},
                {k: float(np.max(v)) for k, v in values.items()}, len(reports), samples, data)


def final_esm_rel(run: Run) -> float:
    """esm_rel at the smallest level at the run's last evaluation (the multi-scale study's reading)."""
    return float(StudyRun(run, load_levels(run.run_dir)).final("esm_rel")[0])


def final_esm_data(run: Run) -> float:
    """A single-sigma run's esm_data (against the data's own score) at its last evaluation."""
    values = run.metrics.get("esm_data")
    finite = values[np.isfinite(values)] if values is not None else np.array([])
    return float(finite[-1]) if len(finite) else math.nan


@dataclass
class Group:
    """The runs of one dataset and schedule (one per objective and training seed), and everything sampled
    from them. rows: "sampler" (a row per sampler) or "sigma" (the single-sigma paper runs: a row per
    noise scale, all sampled by plain Langevin at the run's sigma)."""

    title: str
    runs: list[Run]
    rows: str = "sampler"


def toy_group(sweep_dir: Path) -> Group:
    return Group("the toy (ncsn_toy: sigma from 20 to 1)",
                 [r for r in load_runs(sweep_dir) if r.status == "completed"])


def diffusion_groups(sweep_dir: Path) -> list[Group]:
    """The diffusion-regime study's 2-D runs (every seed) on its schedule from 1 to 0.01, per dataset."""
    runs = [r for r in load_runs(sweep_dir) if r.status == "completed"
            and r.config["dataset"].get("dim", 2) == 2
            and r.config["schedule"]["sigma_min"] == DIFFUSION_SIGMA_MIN]
    names = sorted({r.config["dataset"]["name"] for r in runs})
    return [Group(f"{name} (the multi-scale study's runs, sigma from 1 to {DIFFUSION_SIGMA_MIN:g})",
                  [r for r in runs if r.config["dataset"]["name"] == name]) for name in names]


def paper_group(sweep_dir: Path) -> Group:
    """The paper's single-sigma half-moon runs (the Figure 1-3 sweep at the same profile), every seed."""
    runs = [r for r in load_runs(sweep_dir) if r.status == "completed"
            and r.config.get("schedule", {}).get("kind", "none") in (None, "none")]
    return Group("half_moon (the paper's single-sigma runs, plain Langevin at each run's sigma)", runs,
                 "sigma")


def row_of(group: Group, report: dict) -> str:
    """The row a quality.json belongs to: its sampler, or (rows="sigma") its sigma."""
    return report["settings"]["name"] if group.rows == "sampler" else f"sigma={report['settings']['sigma']:g}"


def load_cells(group: Group) -> tuple[dict[tuple[str, str], Cell], dict, dict[str, dict]]:
    """{(row, score column): Cell} over the training seeds; each objective's final distance to the exact
    score, mean over the seeds ({loss: esm_rel at sigma_min}, or for rows="sigma" {(row, loss): esm_data});
    and {column: the probability-flow likelihood of the first run that has one}."""
    reports, first, distance, likelihoods = {}, {}, {}, {}
    for run in sorted(group.runs, key=lambda r: (r.seed, r.loss)):
        loss = run.loss
        for quality in sorted((run.run_dir / "samples").glob("*/quality.json")):
            report = json.loads(quality.read_text())
            column = EXACT if report["score"] == "exact" else loss
            if report.get("likelihood") and column not in likelihoods:
                likelihoods[column] = report["likelihood"]
            key = (row_of(group, report), column)
            reports.setdefault(key, []).append(report)
            first.setdefault(key, quality.parent / "samples.npz")
            if group.rows == "sigma" and column != EXACT:
                distance.setdefault(key, []).append(final_esm_data(run))
        if group.rows == "sampler":
            distance.setdefault(loss, []).append(final_esm_rel(run))
    cells = {}
    for key, found in reports.items():
        with np.load(first[key]) as f:
            cells[key] = combine(found, f["samples"][0], f["data"])
    return cells, {k: float(np.mean(v)) for k, v in distance.items()}, likelihoods
