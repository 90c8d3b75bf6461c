"""`dsmexp-variance --profile smoke` end to end: 60 short runs (five variants, four sigmas, three seeds)
on the torch path, every one logging the gradient variance, then the claims report and Figures 12-13
from the saved files; the numbers obey the closed-form scalings the study is about (DSM-S's variance
like 1/sigma^2, ISM's and TSM's like sigma^2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_variance_study_at_the_smoke_profile(tmp_path):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dsmexp.studies.variance.make", "--profile", "smoke", "--launcher",
               "basic"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "outputs" / "figures" / "variance-smoke"
    report = (out / "report.md").read_text()
    assert "| DSM-S's gradient variance grows like 1/sigma^2 as sigma shrinks |" in report
    assert "slope -1.9" in report or "slope -2.0" in report  # 1/sigma^2, per seed
    for name in ("DSM-CV", "DSM-S antithetic", "TSM"):
        assert f"| {name} brings DSM's gradient variance at sigma = 1e-4 within 10x of ISM's |" in report
    assert "N = 200, M = 8, 30 steps" in report
    for name in ("figure12", "figure13"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    import dsmexp

    runs = dsmexp.load_runs(tmp_path / "outputs" / "sweeps" / "variance-smoke")
    assert len(runs) == 60 and set(runs["status"]) == {"completed"}
