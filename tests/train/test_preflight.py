"""The preflight: a run is checked once, where it starts (the command line, the sweeper or run()), and
a machine probe lives there, not in the config's pure checks."""

from __future__ import annotations

import json

import pytest

from dsmexp.config import validate
from dsmexp.errors import ConfigError
from dsmexp.train import preflight as preflight_module
from dsmexp.train import trainer
from dsmexp.train.preflight import preflight
from tests.conftest import TINY, make_cfg, run_cli_in_process

FAST = [*TINY, "eval_samples=50", "kernel=torch", "threads=1"]


@pytest.fixture
def counted(monkeypatch):
    """How many times the config checks ran."""
    calls = []

    def counting(cfg):
        calls.append(cfg.loss.name)
        return validate(cfg)
    monkeypatch.setattr(preflight_module, "validate", counting)
    return calls


def test_a_single_run_from_the_command_line_is_checked_once(tmp_path, monkeypatch, counted):
    code, stderr = run_cli_in_process(*FAST, "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    assert counted == ["dsm"]


def test_a_sweep_checks_each_job_once(tmp_path, monkeypatch, counted):
    code, stderr = run_cli_in_process("-m", *FAST, "loss=ism,dsm_s", "hydra.sweep.dir=sweep", cwd=tmp_path,
                                      monkeypatch=monkeypatch)
    assert code == 0, stderr
    assert sorted(counted) == ["dsm_s", "ism"]


def test_run_called_directly_checks_its_config(tmp_path, counted):
    assert trainer.run(make_cfg(*FAST), tmp_path / "run") == "completed"
    assert counted == ["dsm"]
    assert trainer.run(make_cfg(*FAST), tmp_path / "run") == "completed"  # skipped: checked again, once
    assert counted == ["dsm", "dsm"]


def test_machine_probes_are_the_preflights_not_the_configs(monkeypatch):
    cfg = make_cfg("model=custom", "model.target=tests.user_modules.NotAModule")
    validate(cfg)  # the values are fine: which module it names is a question for this machine
    with pytest.raises(ConfigError, match="is not a torch nn.Module class"):
        preflight(cfg)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    validate(make_cfg("device=cuda"))
    with pytest.raises(ConfigError, match=r"^device=cuda: no CUDA GPU is visible"):
        preflight(make_cfg("device=cuda"))
