"""`dsmexp-sampling --profile smoke` end to end: it trains the toy with every objective and two seeds,
samples every run with every sampler and the exact score with every sampler, samples two single-sigma
paper runs with plain Langevin, and draws the claims report and Figures 10-11 from the saved files; a
second call trains and samples nothing again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def study(cwd):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dsmexp.studies.sampling.make", "--profile", "smoke", "--launcher",
               "basic"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=280)


def test_the_sampling_study_at_the_smoke_profile(tmp_path):
    paper = subprocess.run([sys.executable, "-m", "dsmexp", "-m", "+profile=smoke", "loss=ism,dsm_s",
                            "sigma=1e-4", "hydra.sweep.dir=outputs/sweeps/figures-smoke"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert paper.returncode == 0, paper.stderr[-3000:]
    first = study(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "outputs" / "figures" / "sampling-smoke"
    report = (out / "report.md").read_text()
    for claim in ("annealed Langevin recovers the mixture weights", "lower exact Fisher divergence",
                  "never samples better than the exact score", "(the paper's single-sigma runs) |",
                  "at sigma = 1e-4 ISM's network samples better than DSM-S's"):
        assert claim in report
    assert report.count("| pc |") == 1 and "| exact score |" in report and "ODE log-likelihood" in report
    assert "mean over 2 training seeds" in report and "| 0.0001 |" in report
    for name in ("figure10", "figure11", "figure10_paper", "figure11_paper"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    samples = list((tmp_path / "outputs" / "sweeps" / "sampling-smoke").glob("*/samples/*/quality.json"))
    assert len(samples) == 2 * 5 * 5 + 5
    paper_samples = list((tmp_path / "outputs" / "sweeps" / "figures-smoke").glob("*/samples/*/quality.json"))
    assert len(paper_samples) == 2 + 1  # each network, and the exact score once at sigma = 1e-4
    second = study(tmp_path)
    assert second.returncode == 0 and second.stderr.count("already sampled with these settings") == 58
