"""The sampling study's numbers, from saved files only: each toy run's final distance to the exact score
at its smallest level (levels.csv) and every sample's quality.json (RUN_DIR/samples/)."""

from __future__ import annotations

import json
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
    """One sampler on one score: quality.json's mean and standard error over the sampler seeds, and the
    first seed's samples with the data they are measured against."""

    mean: dict
    se: dict
    samples: np.ndarray
    data: np.ndarray


def final_esm_rel(run: Run) -> float:
    """esm_rel at the smallest level at the run's last evaluation (the multi-scale study's reading)."""
    return float(StudyRun(run, load_levels(run.run_dir)).final("esm_rel")[0])


@dataclass
class Group:
    """The runs of one dataset and schedule, one per objective, and everything sampled from them."""

    title: str
    runs: list[Run]


def toy_group(sweep_dir: Path) -> Group:
    return Group("the toy (ncsn_toy: sigma from 20 to 1)", load_runs(sweep_dir))


def diffusion_groups(sweep_dir: Path) -> list[Group]:
    """The diffusion-regime study's 2-D runs at seed 0 on its schedule from 1 to 0.01, per dataset."""
    runs = [r for r in load_runs(sweep_dir) if r.status == "completed" and r.seed == 0
            and r.config["dataset"].get("dim", 2) == 2
            and r.config["schedule"]["sigma_min"] == DIFFUSION_SIGMA_MIN]
    names = sorted({r.config["dataset"]["name"] for r in runs})
    return [Group(f"{name} (the multi-scale study's runs, seed 0, sigma from 1 to {DIFFUSION_SIGMA_MIN:g})",
                  [r for r in runs if r.config["dataset"]["name"] == name]) for name in names]


def load_cells(runs: list[Run]) -> tuple[dict[tuple[str, str], Cell], dict[str, float], dict[str, dict]]:
    """{(sampler, score column): Cell}, {loss: final esm_rel at sigma_min} and {loss: quality.json's
    probability-flow likelihood} of a group's runs."""
    cells, esm, likelihoods = {}, {}, {}
    for run in runs:
        loss = run.loss
        esm[loss] = final_esm_rel(run)
        for quality in sorted((run.run_dir / "samples").glob("*/quality.json")):
            report = json.loads(quality.read_text())
            column = EXACT if report["score"] == "exact" else loss
            if report.get("likelihood") and column != EXACT:
                likelihoods[loss] = report["likelihood"]
            with np.load(quality.parent / "samples.npz") as f:
                key = (report["settings"]["name"], column)
                cells[key] = Cell(report["mean"], report["se"], f["samples"][0], f["data"])
    return cells, esm, likelihoods
