"""The sampling study's numbers, from saved files only: each toy run's final distance to the exact score
at its smallest level (levels.csv) and every sample's quality.json (RUN_DIR/samples/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsmexp.records.levels_file import load_levels
from dsmexp.records.sweeps import load_runs

STUDY_LOSSES = ("dsm", "dsm_s", "ism", "hybrid", "ssm_vr")
STUDY_SAMPLERS = ("langevin", "annealed_langevin", "reverse_sde", "pf_ode", "pc")
EXACT = "exact"  # the column of the exact score beside the objectives


@dataclass
class Cell:
    """One sampler on one score: quality.json's mean and standard error over the sampler seeds, and the
    first seed's samples with the data they are measured against."""

    mean: dict
    se: dict
    samples: np.ndarray
    data: np.ndarray


def final_esm_rel(run_dir: Path) -> float:
    """esm_rel at the smallest level at the run's last evaluation."""
    levels = load_levels(run_dir).dropna(subset=["esm_rel"])
    last = levels[levels["step"] == levels["step"].max()]
    return float(last.sort_values("sigma")["esm_rel"].iloc[0])


def load_cells(sweep_dir: Path) -> tuple[dict[tuple[str, str], Cell], dict[str, float], dict[str, dict]]:
    """{(sampler, score column): Cell}, {loss: final esm_rel at sigma_min} and {loss: quality.json's
    probability-flow likelihood} of the sweep's runs."""
    cells, esm, likelihoods = {}, {}, {}
    for run in load_runs(sweep_dir):
        loss = run.loss
        esm[loss] = final_esm_rel(run.run_dir)
        for quality in sorted((run.run_dir / "samples").glob("*/quality.json")):
            report = json.loads(quality.read_text())
            column = EXACT if report["score"] == "exact" else loss
            if report.get("likelihood") and column != EXACT:
                likelihoods[loss] = report["likelihood"]
            with np.load(quality.parent / "samples.npz") as f:
                key = (report["settings"]["name"], column)
                cells[key] = Cell(report["mean"], report["se"], f["samples"][0], f["data"])
    return cells, esm, likelihoods
