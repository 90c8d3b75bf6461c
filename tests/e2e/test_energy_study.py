"""`dsmexp-energy --profile smoke` end to end: 24 short runs (ISM and DSM-S at two sigmas, a free-form
score and an energy, three seeds), then the claims report and Figure 15 from the saved files; the numbers
obey what the parametrisation guarantees (an energy's curl is rounding, a free-form field's is not)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_energy_study_at_the_smoke_profile(tmp_path):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dsmexp.studies.energy.make", "--profile", "smoke", "--launcher",
               "basic"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "outputs" / "figures" / "energy-smoke"
    report = (out / "report.md").read_text()
    assert "Smoke profile: not evidence" in report
    line = next(row for row in report.splitlines() if row.startswith("| an energy model's score field"))
    assert line.endswith("| supported |")
    assert "| energy | ISM | 0.01 |" in report and (out / "figure15.png").stat().st_size > 10_000
    import dsmexp

    runs = dsmexp.load_runs(tmp_path / "outputs" / "sweeps" / "energy-smoke")
    assert len(runs) == 24 and set(runs["status"]) == {"completed"}
