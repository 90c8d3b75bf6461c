"""experiment=multiscale from the command line: a noise-conditional run writes levels.csv beside
metrics.csv (L rows a step, the smallest level's esm in metrics.csv), a killed run resumes to the numbers
of an uninterrupted one in both files, and bad schedule settings are one line with nothing written."""

from __future__ import annotations

import multiprocessing
import signal

import numpy as np
import pytest

import dsmexp
from dsmexp.records.levels_file import LEVEL_COLUMNS
from dsmexp.records.metrics_file import COLUMNS
from dsmexp.train import trainer
from tests.conftest import make_cfg, run_cli, run_cli_in_process
from tests.train.test_faults import _killed_run

SMALL = ["experiment=multiscale", "steps=12", "noise_samples=2", "dataset.n_samples=100", "eval_every=5",
         "eval_samples=100", "grid_size=8", "threads=1", "schedule.levels=4", "model.hidden=[16,16]"]


def test_a_multiscale_run_writes_every_level_of_every_step(tmp_path):
    run_cli(*SMALL, "loss=hybrid", "hydra.run.dir=outputs/ms", cwd=tmp_path)
    run_dir = tmp_path / "outputs" / "ms"
    levels, metrics = dsmexp.load_levels(run_dir), dsmexp.load_metrics(run_dir)
    assert list(levels.columns) == list(LEVEL_COLUMNS) and len(levels) == 12 * 4
    assert levels.groupby("step")["level"].apply(list).tolist() == [[0, 1, 2, 3]] * 12
    np.testing.assert_allclose(levels.loc[levels.step == 0, "sigma"], np.logspace(-2, 0, 4))
    assert (levels.groupby("step")["count"].sum() == 200).all()  # N x M points, each at one level
    evaluated = levels.dropna(subset=["esm"])["step"].unique().tolist()
    assert evaluated == [0, 5, 10, 11]
    smallest = levels[(levels.level == 0) & levels.esm.notna()].set_index("step")
    np.testing.assert_allclose(metrics.set_index("step").loc[evaluated, "esm"], smallest["esm"], rtol=1e-12)
    assert np.isfinite(metrics["loss"]).all() and np.isfinite(metrics["fit_est"]).all()
    assert (run_dir / "score_field.npz").is_file()


def test_a_killed_multiscale_run_resumes_to_the_uninterrupted_numbers(tmp_path):
    cfg = make_cfg(*SMALL, "checkpoint_every=4", "loss=ism")
    reference = tmp_path / "uninterrupted"
    assert trainer.run(cfg, reference, threads=1) == "completed"
    child = multiprocessing.get_context("fork").Process(target=_killed_run,
                                                        args=(cfg, str(tmp_path / "killed"), ("step", 7)))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert trainer.run(cfg, tmp_path / "killed", threads=1) == "completed"
    for load, columns in ((dsmexp.load_metrics, COLUMNS[:-1]), (dsmexp.load_levels, LEVEL_COLUMNS)):
        want, got = load(reference), load(tmp_path / "killed")
        assert len(got) == len(want)
        for column in columns:
            np.testing.assert_array_equal(got[column], want[column], err_msg=column)


@pytest.mark.parametrize(("args", "line"), [
    (["schedule.levels=1"], "schedule.levels=1: must be >= 2"),
    (["schedule.sigma_min=1", "schedule.sigma_max=0.1"], "must satisfy 0 < sigma_min < sigma_max"),
    (["weighting=snr2"], "weighting=snr2: must be one of sigma2, none, edm"),
    (["model.parametrization=eps"], "model.parametrization=eps: must be one of score, noise, data"),
    (["loss=hybrid", "loss.switch_sigma=null"], "loss.switch_sigma: missing; loss=hybrid trains ISM below"),
    (["loss=fd_ssm"], "loss=fd_ssm: not available across a noise schedule"),
    (["schedule.sampling=every"], "schedule.sampling=every: must be one of random, all"),
])
def test_bad_schedule_settings_are_one_line_and_write_nothing(args, line, tmp_path, monkeypatch):
    code, stderr = run_cli_in_process("experiment=multiscale", *args, cwd=tmp_path, monkeypatch=monkeypatch)
    lines = [entry for entry in stderr.splitlines() if entry.strip()]
    assert code == 1 and len(lines) == 1 and line in lines[0], stderr
    assert not (tmp_path / "outputs").exists()


def test_one_sigma_runs_refuse_what_needs_a_schedule(tmp_path, monkeypatch):
    for args, line in ((["loss=hybrid"], "loss=hybrid: trains across noise scales only"),
                       (["model.parametrization=noise"], "parametrization=noise: needs a noise-conditional")):
        code, stderr = run_cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)
        assert code == 1 and line in stderr, stderr
    assert not (tmp_path / "outputs").exists()
