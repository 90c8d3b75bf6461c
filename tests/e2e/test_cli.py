"""The command line: runs and sweeps in subprocesses, bad input (in-process, and two cases through the real
command line), config printing, the console script and completion. --help: test_packaging."""

import csv
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli, run_cli_in_process

pytestmark = pytest.mark.slow


def test_single_run_lands_in_a_directory_named_by_its_overrides(tmp_path):
    proc = run_cli(*TINY, "loss=ism", "sigma=0", cwd=tmp_path)
    run_dirs = [p.parent for p in (tmp_path / "outputs" / "runs").glob("*/summary.json")]
    assert len(run_dirs) == 1
    name = run_dirs[0].name
    assert "loss=ism" in name and "sigma=0" in name
    assert json.loads((run_dirs[0] / "summary.json").read_text())["status"] == "completed"
    assert (run_dirs[0] / ".hydra" / "config.yaml").exists()
    assert "completed 6 steps" in proc.stderr + proc.stdout


@pytest.mark.parametrize("args, key", [
    (["sigma=-0.1"], "sigma=-0.1"),
    (["loss=dsm", "sigma=0"], "sigma=0 with loss=dsm"),
    (["loss=dsm_s", "sigma=0"], "sigma=0 with loss=dsm_s"),
    (["noise_samples=0"], "noise_samples=0"),
    (["steps=0"], "steps=0"),
    (["model.activation=relu"], "model.activation=relu"),
    (["device=cuda"], "device=cuda"),
    (["dataset=moons"], "dsmexp: error: dataset=moons: must be one of checkerboard, gaussian, gmm, "
                        "half_moon, square, swiss_roll"),
    (["loss=esm"], "dsmexp: error: loss=esm: must be one of dsm, dsm_cv, dsm_s, fd_ssm, hybrid, ism, ssm, "
                   "ssm_vr, tsm, tsm_mix"),
    (["optimizer=rmsprop"], "dsmexp: error: optimizer=rmsprop: must be one of adam, adamw, sgd"),
    (["logger=wandb"], "dsmexp: error: logger=wandb: must be one of mlflow, none, tensorboard"),
    (["sigma=abc"], "sigma"),
    (["+sigam=0.1"], "sigam: not a dsmexp setting; did you mean sigma?"),
    (["dataset.noise=inf"], "dataset.noise=inf: must be a finite number"),
    (["seed=-1"], "seed=-1: must be >= 0"),
    (["loss=ssm", "projections=0"], "projections=0: must be >= 1"),
    (["loss=fd_ssm", "fd_eps=0"], "fd_eps=0.0: must be > 0"),
    (["loss=ssm_vr", "projection=cauchy"], "projection=cauchy: must be one of"),
    (["model=custom", "model.target=no_such_pkg.Net"], "model.target=no_such_pkg.Net: cannot be imported"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, monkeypatch, args, key):
    if args == ["device=cuda"]:
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 1
    assert key in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args, key", [
    (["sigma=-0.1"], "dsmexp: error: sigma=-0.1: must be >= 0"),  # found by dsmexp's checks
    (["dataset=moons"], "dsmexp: error: dataset=moons: must be one of"),  # found while composing
    (["sigma=[1"], "no viable alternative at input"),  # Hydra's own report of an override it cannot parse
])
def test_bad_input_from_the_real_command_line_exits_1_without_a_traceback(tmp_path, args, key):
    proc = run_cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert key in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "outputs").exists()


def test_multirun_runs_every_job_skips_dsm_at_sigma_zero_and_tabulates_them(tmp_path):
    proc = run_cli("-m", *TINY, "loss=ism,dsm_s", "sigma=0,1e-3,1e-2", "hydra.sweep.dir=outputs/sweeps/t",
                   cwd=tmp_path)
    skipped = [line for line in (proc.stderr + proc.stdout).splitlines() if "skipping job" in line]
    assert len(skipped) == 1 and "loss=dsm_s" in skipped[0] and "sigma=0 " in skipped[0]
    sweep = tmp_path / "outputs" / "sweeps" / "t"
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert len(summaries) == 5 and {s["status"] for s in summaries} == {"completed"}
    sigmas = sorted((s["config"]["loss"]["name"], s["config"]["sigma"]) for s in summaries)
    assert sigmas == [("dsm_s", 0.001), ("dsm_s", 0.01), ("ism", 0.0), ("ism", 0.001), ("ism", 0.01)]
    assert all(isinstance(s["config"]["sigma"], float) for s in summaries)
    with (sweep / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["status"] for r in rows) == ["completed"] * 5 + ["skipped"]


def test_sweep_with_a_bad_value_fails_before_any_job(tmp_path):
    proc = run_cli("-m", *TINY, "sigma=-1,1e-2", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "sigma=-1.0: must be >= 0" in proc.stderr
    assert not list(tmp_path.rglob("metrics.csv")) and not list(tmp_path.rglob("multirun.yaml"))


def test_cfg_job_prints_the_resolved_config(tmp_path):
    out = run_cli("--cfg", "job", "loss=ism", "sigma=1e-3", cwd=tmp_path).stdout
    assert "sigma: 0.001" in out and "name: ism" in out and "hidden:" in out
    assert not (tmp_path / "outputs").exists()


def test_console_script_and_tab_completion(tmp_path):
    import subprocess
    script = Path(sys.executable).parent / "dsmexp"
    assert script.exists(), "the package's console script is not installed"
    out = subprocess.run([str(script), "--cfg", "job", "dataset=swiss_roll"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert "name: swiss_roll" in out
    completion = subprocess.run([str(script), "-sc", "install=bash"], cwd=tmp_path,
                                capture_output=True, text=True, check=True).stdout
    assert "hydra_bash_completion" in completion and "dsmexp" in completion


@pytest.mark.parametrize(("args", "line"), [
    (["~seed"], "dsmexp: error: ~seed: seed cannot be removed; every dsmexp setting needs a value (its "
                "default: seed=0)"),
    (["~optimizer"], "dsmexp: error: ~optimizer: the optimizer group needs an option; choose one with "
                     "optimizer=NAME (adam, adamw, sgd)"),
    (["--cfg", "job", "+foo=1"], "dsmexp: error: foo: not a dsmexp setting (`python -m dsmexp --cfg job` "
                                 "lists them all)"),
    (["-cd", "myconf", "experiment=mine"], "dsmexp: error: sigma=-1.0: must be >= 0 (0 trains ISM on clean "
                                           "data)"),
])
def test_a_removed_key_a_printed_bad_config_and_a_config_dir_of_ones_own_are_one_line(tmp_path, monkeypatch,
                                                                                        args, line):
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "mine.yaml").write_text("# @package _global_\nsigma: -1\n")
    code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert (code, stderr.strip()) == (1, line)
    assert not (tmp_path / "outputs").exists()  # nothing written, not even Hydra's .hydra/
