"""Without a terminal (a log file, Slurm, nohup) a run logs a progress line every so often, and its last
lines say where the results are and show only the numbers its objective has."""

from __future__ import annotations

import logging
import re

import pytest

from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

FAST = [*TINY, "steps=12", "eval_samples=50", "kernel=torch", "threads=1"]


@pytest.mark.parametrize(("loss", "sigma", "shown", "absent"), [
    ("dsm", "0.1", ["loss_dsm_s=", "fit_dsm=", "const_dsm="], ["fit_est", "loss="]),
    ("ism", "0", ["loss_ism=", "fit_ism="], ["fit_dsm", "fit_est", "const_dsm"]),
    ("ssm_vr", "0", ["loss_est=", "fit_est=", "fit_ism="], ["fit_dsm", "const_dsm"]),
])
def test_progress_and_last_lines_with_no_terminal(tmp_path, monkeypatch, caplog, loss, sigma, shown, absent):
    monkeypatch.setattr(trainer, "PROGRESS_EVERY_S", 0.0)  # a line at every flush
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="dsmexp.train.trainer"):
        assert trainer.run(make_cfg(*FAST, f"loss={loss}", f"sigma={sigma}"), tmp_path / "run") == "completed"
    lines = [r.getMessage() for r in caplog.records]
    progress = [line for line in lines if re.match(r"step \d+/12 \(\d+%\): ", line)]
    assert len(progress) == 12 and progress[-1].startswith("step 12/12 (100%): ")
    assert re.search(r"; [\d.]+ steps/s, \d+ s left$", progress[0])
    completed = next(line for line in lines if line.startswith("completed 12 steps"))
    assert all(name in completed for name in shown) and "esm=" in completed
    assert not any(name in completed for name in absent) and "nan" not in completed
    assert lines[-1] == ("results in run (metrics.csv, summary.json, score_field.npz); "
                         "dsmexp.load_metrics('run') reads every step")


def test_no_progress_line_before_its_interval(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="dsmexp.train.trainer"):
        trainer.run(make_cfg(*FAST), tmp_path / "run")
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert progress == [progress[-1]] and progress[0].startswith("step 12/12")  # only the last step's
