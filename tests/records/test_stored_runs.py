"""Runs written before the package was layered (tests/data/stored_run: a finished ISM run from commit
23450c2, whose Hydra files with its machine's paths are left out) are still read, recognised as the
same run and skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dsmexp.errors import ConfigError
from dsmexp.records import identity, metrics_file, sweeps
from dsmexp.train import trainer
from tests.conftest import make_cfg

STORED = Path(__file__).resolve().parents[1] / "data" / "stored_run"


def test_a_finished_run_from_before_the_move_is_read_and_skipped(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(STORED, run_dir)
    cfg = make_cfg(*OmegaConf.load(STORED / ".hydra" / "overrides.yaml"))
    finished = identity.check_existing_run(cfg, run_dir)
    assert finished is not None and finished["status"] == "completed" and finished["steps_done"] == 30
    run = sweeps.read_run(run_dir)
    assert (run.loss, run.sigma, run.status) == ("ism", 0.0, "completed")
    assert run.metrics["step"].tolist() == list(range(30)) and run.field() is not None
    assert list(metrics_file.load_metrics(run_dir).columns) == list(metrics_file.COLUMNS)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}
    assert trainer.run(cfg, run_dir) == "completed"  # skipped: nothing trained or rewritten
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()} == before


def test_the_same_run_with_another_setting_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(STORED, run_dir)
    stored = OmegaConf.load(STORED / ".hydra" / "overrides.yaml")
    overrides = [o for o in stored if not o.startswith("steps=")]
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(steps differ, per its summary"):
        identity.check_existing_run(make_cfg(*overrides, "steps=31"), run_dir)
