"""Result files follow the umask, as files written by any other program do: collaborators sharing a disk
can read them (a group-writable umask makes them group-writable)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from dsmexp.records.tables import write_runs_table
from dsmexp.train import trainer
from hydra_plugins.dsmexp_sweeper._core import _record_plan
from tests.conftest import TINY, make_cfg

RUN_FILES = ("metrics.csv", "summary.json", "checkpoint.pt", "score_field.npz", ".dsmexp.lock")


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_and_sweep_files_follow_the_umask(tmp_path, umask):
    sweep = tmp_path / "sweep"
    run_dir = sweep / "seed=0"
    cfg = make_cfg(*TINY, "eval_samples=50", "kernel=torch", "threads=1")
    assert trainer.run(cfg, run_dir) == "completed"
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(json.dumps({}))
    _record_plan(sweep / "jobs.json", [{"overrides": ["seed=0"], "subdir": "seed=0"}])
    write_runs_table(sweep)
    want = 0o666 & ~umask
    modes = {name: _mode(run_dir / name) for name in RUN_FILES}
    modes |= {name: _mode(sweep / name) for name in ("jobs.json", "runs.csv")}
    assert modes == dict.fromkeys(modes, want)
