"""Real faults: kill -9 at twenty points of a run (end-of-run window included), the same command twice at
once, a busy run directory in a sweep, a full disk, a read-only directory, a parent that is a file."""

import csv
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsmexp.cli import check_single_run
from dsmexp.records import artifacts, metrics_file
from dsmexp.records.runlock import RunLock
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg, run_cli

pytestmark = pytest.mark.slow

FAULT_RUN = [*TINY, "steps=24", "checkpoint_every=5", "eval_every=4", "eval_samples=100"]


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_run(cfg, run_dir: str, point: tuple) -> None:
    """Train cfg in this process and SIGKILL it at `point`:
    ("step", k) before step k; ("row", k, n) with only the first n characters of step k's row written;
    ("rename", name, n) with the n-th temporary copy of `name` written but not renamed;
    ("end", what) inside the end-of-run window (score field or summary being written)."""
    kind = point[0]
    if kind == "step":
        step = trainer.Trainer._step
        trainer.Trainer._step = lambda self, i: _kill_self() if i == point[1] else step(self, i)
    elif kind == "row":
        write = metrics_file.MetricsWriter.write

        def cut(self, rows):
            rows = list(rows)
            for i, row in enumerate(rows):
                if int(row[0]) == point[1]:
                    write(self, rows[:i])
                    self._file.write(f"{int(row[0])},{row[1]!r}"[:point[2]])
                    self._file.flush()
                    _kill_self()
            write(self, rows)
        metrics_file.MetricsWriter.write = cut
    elif kind in ("rename", "end"):
        name, n = (point[1], point[2]) if kind == "rename" else (point[1], 1)
        if kind == "end" and name == artifacts.FIELD_FILE:
            trainer.Trainer._save_score_field = lambda self: _kill_self()
        else:
            replace, seen = os.replace, []

            def killing_replace(src, dst):
                if Path(dst).name == name:
                    seen.append(dst)
                    if len(seen) == n:
                        _kill_self()
                replace(src, dst)
            os.replace = killing_replace
    trainer.run(cfg, Path(run_dir), threads=1)
    raise AssertionError(f"the run was not killed at {point}")


def kill_points() -> list[tuple]:
    """Twenty points: random steps, rows cut short, checkpoints half written, the end-of-run window."""
    rng = np.random.default_rng(9)
    steps = sorted(int(k) for k in rng.choice(np.arange(1, 24), size=13, replace=False))
    return ([("step", k) for k in steps] + [("row", 3, 6), ("row", 17, 1), ("rename", "checkpoint.pt", 1),
            ("rename", "checkpoint.pt", 3), ("rename", "checkpoint.pt", 5),  # 5th: the final checkpoint
            ("end", artifacts.FIELD_FILE), ("rename", "summary.json", 1)])


def test_twenty_kills_each_resume_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    cfg = make_cfg(*FAULT_RUN)
    reference = tmp_path / "uninterrupted"
    assert trainer.run(cfg, reference, threads=1) == "completed"
    want = metrics_file.read_metrics(reference / "metrics.csv")
    points = kill_points()
    assert len(points) == 20
    ctx = multiprocessing.get_context("fork")  # a copy of this process, torch loaded: 0.3 s per kill
    for i, point in enumerate(points):
        run_dir = tmp_path / f"kill{i}"
        child = ctx.Process(target=_killed_run, args=(cfg, str(run_dir), point))
        child.start()
        child.join(120)
        if child.is_alive():
            child.kill()
        assert child.exitcode == -signal.SIGKILL, (point, child.exitcode)
        assert not (run_dir / "summary.json").exists() or point == ("rename", "summary.json", 1)
        assert trainer.run(cfg, run_dir, threads=1) == "completed", point
        got = metrics_file.read_metrics(run_dir / "metrics.csv")
        assert got["step"].tolist() == list(range(24)), point
        for column in metrics_file.COLUMNS[:-1]:  # all but time_s
            np.testing.assert_array_equal(got[column], want[column], err_msg=f"{column} after {point}")
        summary = artifacts.read_summary(run_dir)
        assert summary["status"] == "completed" and summary["steps_done"] == 24, point
        assert summary["final"]["loss"] == want["loss"][-1]
        assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")], point


def test_the_same_command_twice_at_once_gives_one_clean_metrics_csv(tmp_path):
    args = [*TINY, "steps=300", "threads=1", "hydra.run.dir=outputs/twice"]
    env = os.environ | {"HYDRA_FULL_ERROR": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "dsmexp", *args], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    run_dir = tmp_path / "outputs" / "twice"
    metrics = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert metrics["step"].tolist() == list(range(300))
    assert artifacts.read_summary(run_dir)["status"] == "completed"
    assert sorted(rc for rc, _ in results) in ([0, 0], [0, 1])
    for rc, err in results:
        if rc == 1:  # the second found the first at work: one line naming the directory and the pid
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and "outputs/twice is in use by process" in lines[0], err
            assert "Traceback" not in err
    # the usual outcome on a loaded machine too: both start within the 300 steps
    assert [rc for rc, _ in results].count(1) == 1, results


def single_run_check(capsys, *args: str) -> tuple[int, list[str]]:
    """What `python -m dsmexp ARGS` says before Hydra starts: (exit code, stderr lines)."""
    capsys.readouterr()  # what the test printed before (an in-process run's log lines) is not the check's
    with pytest.raises(SystemExit) as stop:
        check_single_run(list(args))
    return stop.value.code, capsys.readouterr().err.strip().splitlines()


def test_a_locked_run_directory_stops_a_run_and_is_skipped_busy_in_a_sweep(tmp_path, capsys, workdir):
    sweep = tmp_path / "outputs" / "busy"
    locked = sweep / "loss=ism"
    locked.mkdir(parents=True)
    with RunLock(locked):
        code, lines = single_run_check(capsys, "+profile=smoke", "loss=ism",
                                       "hydra.run.dir='outputs/busy/loss=ism'")
        assert (code, lines) == (1, [
            f"dsmexp: error: outputs/busy/loss=ism is in use by process {os.getpid()} (one process per run "
            "directory); wait for it to finish, or choose another hydra.run.dir / hydra.sweep.dir"])
        proc = run_cli("-m", "+profile=smoke", "loss=ism,dsm_s", "hydra.sweep.dir=outputs/busy", cwd=tmp_path)
    assert "skipping job +profile=smoke loss=ism (skipped-busy)" in proc.stdout + proc.stderr
    with (sweep / "runs.csv").open() as f:
        status = {r["run_dir"]: (r["status"], r["error"]) for r in csv.DictReader(f)}
    assert status["loss=dsm_s"][0] == "completed"
    assert status["loss=ism"][0] == "skipped-busy"
    assert f"in use by process {os.getpid()}" in status["loss=ism"][1]
    assert sorted(p.name for p in locked.iterdir()) == [".dsmexp.lock"]


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_gives_one_line_leaves_no_temporary_file_and_the_rerun_resumes(tmp_path):
    """RLIMIT_FSIZE makes every write past 6 kB fail as a full disk would: the checkpoint (~8 kB) cannot
    be written, metrics.csv rows (~3 kB) can."""
    args = [*TINY, "hydra.run.dir=outputs/full"]
    env = os.environ | {"HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, "-m", "dsmexp", *args], cwd=tmp_path, env=env, text=True,
                          capture_output=True, preexec_fn=_limit_file_size(6000), timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dsmexp: error: cannot write ") and last.endswith(
        "outputs/full/checkpoint.pt: File too large; free space or fix the directory, then run the same "
        "command again (it resumes from the last checkpoint)"), proc.stderr
    run_dir = tmp_path / "outputs" / "full"
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    summary = artifacts.read_summary(run_dir)
    assert summary["status"] == "failed" and "File too large" in summary["error"]
    assert trainer.run(make_cfg(*TINY), run_dir) == "completed"
    assert metrics_file.read_metrics(run_dir / "metrics.csv")["step"].tolist() == list(range(6))


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_read_only_directories_and_a_file_as_parent_give_one_line(tmp_path, capsys, workdir):
    run_dir = tmp_path / "outputs" / "ro" / "run"
    assert trainer.run(make_cfg(*TINY), run_dir) == "completed"
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    cmd = [*_unprivileged(), sys.executable, "-m", "dsmexp", *TINY]
    env = os.environ | {"HYDRA_FULL_ERROR": "0"}
    for path in [*run_dir.rglob("*"), run_dir, run_dir.parent]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        done = subprocess.run([*cmd, "hydra.run.dir=outputs/ro/run"], cwd=tmp_path, env=env, text=True,
                              capture_output=True)
        new = subprocess.run([*cmd, "seed=5", "hydra.run.dir=outputs/ro/other"], cwd=tmp_path, env=env,
                             text=True, capture_output=True)
    finally:
        for path in [run_dir.parent, run_dir, *run_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert done.returncode == 0 and done.stderr.strip().splitlines() == [
        "dsmexp: outputs/ro/run: already completed after 6 steps; skipping (overwrite=true trains it again)"]
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before
    assert new.returncode == 1 and new.stderr.strip().splitlines() == [
        "dsmexp: error: cannot create outputs/ro/other: Permission denied; free space or fix the directory, "
        "then run the same command again (it resumes from the last checkpoint)"]
    (tmp_path / "afile").write_text("not a directory")
    assert single_run_check(capsys, *TINY, "hydra.run.dir=afile/run") == (1, [
        "dsmexp: error: cannot create afile/run: a parent of it is a file, not a directory; free space or "
        "fix the directory, then run the same command again (it resumes from the last checkpoint)"])
