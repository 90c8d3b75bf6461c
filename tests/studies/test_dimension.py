"""The dimension study: its presets, the numbers it reads from saved runs, and the pipeline end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsmexp.records import metrics_file
from dsmexp.records.sweeps import Run
from dsmexp.studies.dimension.numbers import Verdict, load_study, study_run, values_per_step
from dsmexp.studies.dimension.timing import measure
from tests.conftest import make_cfg

ROOT = Path(__file__).resolve().parents[2]


def fake_run(loss: str, dim: int, step_s: float, rel: list[float], sigma: float = 0.0, se: float = 0.1,
             projections: int = 1) -> Run:
    """A run of `len(rel)` steps taking step_s seconds each, evaluated at every step."""
    n = len(rel)
    column = {"ism": "fit_ism_se", "dsm_s": "fit_dsm_se"}.get(loss, "fit_est_se")
    metrics = {"step": np.arange(n), "time_s": step_s * np.arange(1, n + 1), "esm_data_rel": np.array(rel),
               column: np.full(n, se)}
    config = {"loss": {"name": loss}, "sigma": sigma, "noise_samples": 10, "projections": projections,
              "dataset": {"dim": dim, "n_samples": 1000}}
    return Run(Path("."), loss, sigma, "completed", config, metrics, {})


def test_verdict_reads_every_objective_at_the_shortest_total_time():
    runs = [fake_run("ism", 8, 0.03, [0.5, 0.2, 0.1, 0.05]),  # 0.12 s in all: the budget
            fake_run("ssm_vr", 8, 0.01, [0.5, 0.3, 0.25, 0.2, 0.15, 0.12, 0.11, 0.09, 0.085, 0.082, 0.081,
                                         0.08, 0.01, 0.01, 0.01]),
            fake_run("dsm_s", 8, 0.06, [0.5, 0.02, 0.01, 0.001])]
    study = {(r.loss, 8): study_run(r) for r in runs}
    verdict = Verdict.at(study, 8)
    assert verdict.budget == pytest.approx(0.12)
    # by 0.12 s: ISM saw all 4 evaluations, SSM-VR its first 12, DSM-S its first 2
    assert verdict.best == pytest.approx({"ism": 0.05, "ssm_vr": 0.08, "dsm_s": 0.02})
    assert verdict.winner == "dsm_s"
    assert verdict.ism_over_ssm_vr == pytest.approx(3.0)


def test_per_point_variance_is_the_squared_standard_error_times_the_values_averaged():
    ism = study_run(fake_run("ism", 2, 0.01, [0.5] * 6, se=0.2))
    assert ism.variance == pytest.approx(0.04 * 1000)
    ssm = fake_run("ssm", 2, 0.01, [0.5] * 6, se=0.2, projections=4)
    assert values_per_step(ssm) == 4000
    dsm = fake_run("dsm_s", 2, 0.01, [0.5] * 6, sigma=0.1, se=0.3)
    assert study_run(dsm).variance == pytest.approx(0.09 * 10 * 1000)


def test_presets_compose_the_study_grid():
    cfg = make_cfg("experiment=dimension", "+profile=dimension_quick")
    params = cfg.hydra.sweeper.params if "hydra" in cfg else None
    assert cfg.sigma == 0 and cfg.model.hidden == [16, 32] and cfg.model.activation == "tanh"
    assert cfg.steps == 1000 and cfg.diagnostics_every == 0 and params is None
    dsm = make_cfg("experiment=dimension_dsm_s", "+profile=dimension_quick")
    assert dsm.loss.name == "dsm_s" and dsm.sigma > 0 and dsm.steps == cfg.steps and dsm.seed == cfg.seed


@pytest.mark.slow
def test_make_dimension_smoke_draws_figures_and_the_answer_table(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dsmexp.studies.dimension.make", "--profile", "smoke",
                           "--dims", "2,8", "--launcher", "basic"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "outputs" / "figures" / "dimension-smoke"
    for name in ("figure5", "figure6", "figure7"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    study = load_study(tmp_path / "outputs" / "sweeps" / "dimension-smoke")
    assert sorted(study) == sorted((loss, d) for loss in ("ism", "ssm_vr", "ssm", "fd_ssm", "dsm_s")
                                   for d in (2, 8))
    report = (out / "report.md").read_text()
    assert report.splitlines()[2].startswith("> **Smoke profile: not evidence.**")
    for d in (2, 8):
        verdict = Verdict.at(study, d)
        runs = {loss: study[(loss, d)] for loss in verdict.best}
        # the winner's row, recomputed from metrics.csv on disk
        best = {}
        for loss, run in runs.items():
            m = metrics_file.read_metrics(run.run.run_dir / "metrics.csv")
            seen = np.isfinite(m["esm_data_rel"]) & (m["time_s"] <= verdict.budget * (1 + 1e-9))
            best[loss] = m["esm_data_rel"][seen].min() if seen.any() else math.nan
        assert verdict.best == pytest.approx(best, nan_ok=True)
        assert best[verdict.winner] == min(v for v in best.values() if math.isfinite(v))  # ties: any of them
        assert 0 < verdict.ism_over_ssm_vr < 100
        assert f"| {d} | {verdict.budget:.1f} |" in report
    assert "exact trace against the hidden widths at d = 512" in report
    timing = json.loads((tmp_path / "outputs" / "sweeps" / "dimension-smoke" / "timing.json").read_text())
    assert sorted(timing["by_d"]) == sorted(("ism", "ssm_vr", "ssm", "fd_ssm", "dsm_s"))
    assert all(0 < ms < 60_000 for row in timing["by_d"].values() for ms in row.values())
    assert sorted(timing["by_width"]["ism"]) == ["128-256", "16-32", "32-64", "64-128", "8-16"]


@pytest.mark.parametrize("args", [["+sigam=1"], ["--pilot", "+sigam=1"], ["--losses", "dsm_s", "sigam=1"]])
def test_the_study_script_checks_every_job_before_training(args, tmp_path, monkeypatch, capsys):
    from dsmexp.studies.dimension import make as script
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(script, "dsmexp", lambda *overrides: pytest.fail(f"a sweep started: {overrides}"))
    monkeypatch.setattr(script, "measure", lambda *a, **k: pytest.fail("the timing started"))
    assert script.main(["--profile", "smoke", "--dims", "2,8", "--launcher", "basic", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dimension.py: error: experiment=dimension") and err.count("\n") == 1, err
    assert "sigam" in err and list(tmp_path.iterdir()) == []


def test_timing_measures_every_objective_and_width_in_one_process():
    timing = measure("smoke", [8], ["ism", "ssm_vr", "dsm_s"], repeats=3, warmup=1,
                     widths=((8, 16), (128, 256)))
    assert sorted(timing["by_d"]) == ["dsm_s", "ism", "ssm_vr"]
    for row in timing["by_d"].values():
        assert sorted(row) == ["8"] and all(ms > 0 for ms in row.values())
    assert sorted(timing["by_width"]) == ["ism", "ssm_vr"] and timing["width_dim"] == 512
    # a 128-256 network does 64 times the 16-32 network's trace work per point: it cannot be cheaper
    assert timing["by_width"]["ism"]["128-256"] > timing["by_width"]["ism"]["8-16"]
