"""A file dsmexp writes that is a symbolic link is refused in one line naming it, and the link's target
keeps its content: the run lock, every run file, the sweep's jobs.json and runs.csv, and Hydra's files."""

from pathlib import Path

import numpy as np
import pytest

from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, metrics_file
from dsmexp.records.runlock import LOCK_FILE, RunLock, is_busy
from dsmexp.records.tables import write_runs_table
from dsmexp.safe_io import open_append
from hydra_plugins.dsmexp_sweeper._core import _record_plan
from tests.conftest import TINY, run_cli_in_process

KNOWN = "keep me\n"


def _link(directory: Path, name: str, tmp_path: Path) -> tuple[Path, Path]:
    """directory/name as a symbolic link to a file outside it holding KNOWN."""
    target = tmp_path / "elsewhere" / f"target-{name.replace('/', '_')}"
    target.parent.mkdir(exist_ok=True)
    target.write_text(KNOWN)
    link = directory / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link, target


def _assert_refused(err: pytest.ExceptionInfo, link: Path, target: Path) -> None:
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{link}: a symbolic link to {target}, and dsmexp never writes through one")
    assert target.read_text() == KNOWN and link.is_symlink()


def test_the_run_lock_does_not_follow_a_symlink(tmp_path):
    run_dir = tmp_path / "run"
    link, target = _link(run_dir, LOCK_FILE, tmp_path)
    assert is_busy(run_dir) is None
    with pytest.raises(RunFileError) as err:
        RunLock(run_dir).acquire()
    _assert_refused(err, link, target)


def test_a_dangling_lock_symlink_creates_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).symlink_to(tmp_path / "created-by-the-lock")
    with pytest.raises(RunFileError, match="a symbolic link"):
        RunLock(run_dir).acquire()
    assert not (tmp_path / "created-by-the-lock").exists()


WRITERS = {
    metrics_file.METRICS_FILE: lambda p: metrics_file.MetricsWriter(p, []).close(),
    artifacts.SUMMARY_FILE: lambda p: artifacts.write_json(p, {"status": "completed"}),
    artifacts.CHECKPOINT_FILE: lambda p: artifacts.save_checkpoint(p, {"steps_done": 1}),
    artifacts.FIELD_FILE: lambda p: artifacts.save_score_field(p, {"score": np.zeros(2)}),
    "runs.csv": lambda p: write_runs_table(p.parent),
    "jobs.json": lambda p: _record_plan(p, [{"overrides": ["sigma=1"], "subdir": "sigma=1"}]),
    "appended.csv": lambda p: open_append(p).close(),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_writer_refuses_a_symlink_and_leaves_its_target_alone(name, tmp_path):
    link, target = _link(tmp_path / "run", name, tmp_path)
    with pytest.raises(RunFileError) as err:
        WRITERS[name](link)
    _assert_refused(err, link, target)
    assert [p.name for p in link.parent.iterdir() if p.name != LOCK_FILE] == [name]  # no temporary left


@pytest.mark.parametrize("name", [LOCK_FILE, metrics_file.METRICS_FILE, artifacts.CHECKPOINT_FILE,
                                  "dsmexp.log",
                                  ".hydra/config.yaml"])
def test_a_run_directory_holding_a_symlink_is_refused_before_any_work(name, tmp_path, monkeypatch):
    link, target = _link(tmp_path / "run", name, tmp_path)
    code, stderr = run_cli_in_process(*TINY, "kernel=torch", "hydra.run.dir=run", cwd=tmp_path,
                                      monkeypatch=monkeypatch)
    assert code == 1
    assert stderr.splitlines() == [f"dsmexp: error: run/{name}: a symbolic link to {target}, and dsmexp "
                                   "never writes through one; remove the link or choose another "
                                   "hydra.run.dir / hydra.sweep.dir"]
    assert target.read_text() == KNOWN
    assert sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run").rglob("*")) == sorted(
        {Path(name), *Path(name).parents} - {Path(".")})


def test_a_sweep_whose_jobs_json_is_a_symlink_stops_in_one_line(tmp_path, monkeypatch):
    link, target = _link(tmp_path / "sweep", "jobs.json", tmp_path)
    code, stderr = run_cli_in_process("-m", *TINY, "kernel=torch", "hydra.sweep.dir=sweep", "sigma=0.1,0.2",
                                      cwd=tmp_path, monkeypatch=monkeypatch)
    lines = [line for line in stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    assert code == 1 and len(lines) == 1 and "sweep/jobs.json: a symbolic link" in lines[0], stderr
    assert target.read_text() == KNOWN
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["jobs.json"]
