"""Sweeps that scale and survive: launchers, runs.csv, resume after a kill, divergence, failures."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsmexp.records import artifacts, metrics_file, tables
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg, run_cli, run_cli_in_process

pytestmark = pytest.mark.slow

SMOKE_SWEEP = ["-m", "experiment=fig1", "+profile=smoke", "threads=1"]


def read_table(path: Path) -> list[dict]:
    with path.open() as f:
        return sorted(csv.DictReader(f), key=lambda r: r["run_dir"])


def test_presets_compose_the_paper_settings():
    cfg = make_cfg("experiment=paper")
    assert (cfg.dataset.name, cfg.dataset.n_samples, cfg.noise_samples) == ("half_moon", 1000, 500)
    assert (list(cfg.model.hidden), cfg.model.activation) == ([16, 32], "tanh")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.sigma, cfg.loss.name) == ("adamw", 1e-3, 0.01, "dsm_s")
    quick = make_cfg("experiment=fig2", "+profile=quick")
    assert (quick.noise_samples, quick.steps, quick.profile_name) == (50, 2000, "quick")
    assert (quick.dataset.n_samples, list(quick.model.hidden)) == (1000, [16, 32])


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory) -> Path:
    """SMOKE_SWEEP through the basic launcher; tests that change it work on a copy."""
    cwd = tmp_path_factory.mktemp("basic")
    run_cli(*SMOKE_SWEEP, "hydra.sweep.dir=outputs/basic", cwd=cwd)
    return cwd / "outputs" / "basic"


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers_write_the_same_runs_table_as_the_basic_one(tmp_path, basic_sweep, launcher):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    run_cli(*SMOKE_SWEEP, f"hydra/launcher={launcher}", *extra, f"hydra.sweep.dir=outputs/{launcher}",
            cwd=tmp_path)
    basic = read_table(basic_sweep / "runs.csv")
    other = read_table(tmp_path / "outputs" / launcher / "runs.csv")
    assert len(basic) == 2 and {r["status"] for r in basic} == {"completed"}
    for a, b in zip(basic, other):
        a.pop("wall_time_s"), b.pop("wall_time_s")
        assert a == b


def test_killed_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path):
    args = [*TINY, "steps=1500", "checkpoint_every=100", "eval_every=50", "threads=1",
            "hydra.run.dir=outputs/killed"]
    run_dir = tmp_path / "outputs" / "killed"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dsmexp", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "checkpoint.pt").exists() and _rows(run_dir) > 350:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()
    killed_at = _rows(run_dir)
    resumed_from = artifacts.load_checkpoint(run_dir / "checkpoint.pt")["steps_done"]
    assert 300 <= resumed_from < killed_at < 1500

    out = run_cli(*args, cwd=tmp_path)
    assert f"resuming {run_dir.resolve()} from step {resumed_from}" in out.stderr + out.stdout
    reference = tmp_path / "uninterrupted"
    trainer.run(make_cfg(*args[:-1]), reference, threads=1)
    got, want = (metrics_file.read_metrics(d / "metrics.csv") for d in (run_dir, reference))
    assert got["step"].tolist() == list(range(1500))
    for column in metrics_file.COLUMNS[:-1]:  # all but time_s
        np.testing.assert_array_equal(got[column], want[column], err_msg=column)


def _rows(run_dir: Path) -> int:
    try:
        return (run_dir / "metrics.csv").read_text().count("\n") - 1
    except FileNotFoundError:
        return 0


def test_divergence_is_a_result_and_the_sweep_goes_on(tmp_path):
    run_cli("-m", *TINY, "steps=40", "loss=ism", "optimizer=sgd", "optimizer.lr=1e-3,1e6",
            "hydra.sweep.dir=outputs/div", cwd=tmp_path)
    rows = {r["overrides"]: r for r in read_table(tmp_path / "outputs" / "div" / "runs.csv")}
    diverged = next(r for k, r in rows.items() if "lr=1000000" in k or "lr=1e6" in k)
    fine = next(r for k, r in rows.items() if "lr=0.001" in k)
    assert fine["status"] == "completed" and fine["steps_done"] == "40"
    assert diverged["status"] == "diverged"
    step = int(diverged["diverged_step"])
    assert 0 < step < 40 and int(diverged["steps_done"]) == step + 1
    m = metrics_file.read_metrics(tmp_path / "outputs" / "div" / diverged["run_dir"] / "metrics.csv")
    assert m["step"][-1] == step and not np.isfinite([m["loss"][-1], m["grad_norm_ism"][-1]]).all()
    assert np.isfinite(m["loss"][:-1]).all()


def test_a_failing_job_is_recorded_the_others_run_and_the_sweep_exits_nonzero(tmp_path):
    sweep = tmp_path / "outputs" / "fail"
    (sweep / "loss=ism,sigma=0.01" / "metrics.csv").mkdir(parents=True)  # an unreadable metrics file
    proc = run_cli(*SMOKE_SWEEP, "hydra.sweep.dir=outputs/fail", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "1 of 2 jobs failed" in proc.stderr and "Is a directory" in proc.stderr
    rows = {r["run_dir"]: r for r in read_table(sweep / "runs.csv")}
    assert rows["loss=ism,sigma=0.01"]["status"] == "unreadable"
    assert "metrics.csv: cannot be read ([Errno 21] Is a directory" in rows["loss=ism,sigma=0.01"]["error"]
    assert rows["loss=dsm_s,sigma=0.01"]["status"] == "completed"


def test_a_finished_run_is_skipped_not_overwritten(tmp_path, monkeypatch):
    args = [*TINY, "hydra.run.dir=outputs/once"]
    run_cli(*args, cwd=tmp_path)
    run_dir = tmp_path / "outputs" / "once"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"}
    code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0 and "already completed after 6 steps; skipping" in stderr
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    run_cli(*args, "overwrite=true", cwd=tmp_path)
    assert (run_dir / "summary.json").read_bytes() != before["summary.json"]


def test_other_settings_in_the_same_directory_are_refused_before_anything_changes(tmp_path, monkeypatch):
    run_cli(*TINY, "hydra.run.dir=outputs/mine", cwd=tmp_path)
    config_before = (tmp_path / "outputs" / "mine" / ".hydra" / "config.yaml").read_text()
    code, stderr = run_cli_in_process(*TINY, "steps=7", "hydra.run.dir=outputs/mine", cwd=tmp_path,
                                      monkeypatch=monkeypatch)
    assert code == 1 and "other settings (steps differ" in stderr
    assert (tmp_path / "outputs" / "mine" / ".hydra" / "config.yaml").read_text() == config_before


def test_runs_table_is_rebuilt_from_disk_with_incomplete_and_missing_jobs(tmp_path, basic_sweep):
    sweep = tmp_path / "re"
    shutil.copytree(basic_sweep, sweep)
    original = read_table(sweep / "runs.csv")
    (sweep / "runs.csv").unlink()
    out = subprocess.run([sys.executable, "-m", "dsmexp.sweeps", str(sweep)], capture_output=True,
                         text=True, check=True).stdout
    assert "2 jobs" in out and read_table(sweep / "runs.csv") == original
    (sweep / "loss=ism,sigma=0.01" / "summary.json").unlink()  # as if killed before the end
    plan = json.loads((sweep / "jobs.json").read_text())
    plan.append({"overrides": ["loss=ism", "sigma=0.5"], "subdir": "loss=ism,sigma=0.5"})
    (sweep / "jobs.json").write_text(json.dumps(plan))  # as if a cluster job never started
    status = {r["run_dir"]: r["status"] for r in read_table(tables.write_runs_table(sweep))}
    assert status == {"loss=dsm_s,sigma=0.01": "completed", "loss=ism,sigma=0.01": "incomplete",
                      "loss=ism,sigma=0.5": "missing"}


def test_sweeps_sharing_a_directory_keep_the_whole_plan(tmp_path):
    """fig2 then fig1 into one directory: runs.csv still lists fig2's skipped DSM-at-sigma-0 job."""
    run_cli("-m", "experiment=fig2", "+profile=smoke", "threads=1", "steps=3", "hydra.sweep.dir=outputs/figs",
            cwd=tmp_path)
    run_cli("-m", "experiment=fig1", "+profile=smoke", "threads=1", "steps=3", "hydra.sweep.dir=outputs/figs",
            cwd=tmp_path)
    rows = read_table(tmp_path / "outputs" / "figs" / "runs.csv")
    assert sorted(r["status"] for r in rows) == ["completed"] * 9 + ["skipped"]


def test_the_same_multirun_again_resumes_its_sweep_directory(tmp_path, monkeypatch):
    """Without hydra.sweep.dir a sweep is named by its command's settings, as a single run is, so the same
    command again finds its jobs finished and trains nothing."""
    args = ["-m", *TINY, "eval_samples=50", "kernel=torch", "threads=1", "loss=ism,dsm_s", "sigma=0,1e-2"]
    code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, stderr
    [sweep] = (tmp_path / "outputs" / "sweeps").iterdir()  # one directory for the whole sweep
    assert sweep.name.startswith("dataset.n_samples=64,") and "loss=ism,dsm_s" in sweep.name
    runs = sorted(p.parent for p in sweep.glob("*/metrics.csv"))
    assert len(runs) == 3  # dsm_s at sigma = 0 is skipped
    before = {p: (p / "metrics.csv").stat().st_mtime_ns for p in runs}
    code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, stderr
    assert [p.name for p in (tmp_path / "outputs" / "sweeps").iterdir()] == [sweep.name]
    assert {p: (p / "metrics.csv").stat().st_mtime_ns for p in runs} == before  # nothing trained again
    assert sorted(r["status"] for r in read_table(sweep / "runs.csv")) == ["completed"] * 3 + ["skipped"]
