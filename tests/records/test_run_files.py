"""Run files that are never lost or faked, in-process: foreign and corrupt files, gaps and cut rows in
metrics.csv, an interrupted end of run, unsafe checkpoints, faithful JSON, resume warnings."""

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, identity, metrics_file
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

RESUMABLE = [*TINY, "steps=12", "checkpoint_every=5", "eval_every=3", "eval_samples=100"]


class Stop(Exception):
    """Stands in for a kill at a chosen point (the process-level kills are in test_faults.py)."""


def stop(*args):
    raise KeyboardInterrupt


def stop_at_step(monkeypatch, k):
    step = trainer.Trainer._step

    def stopping(self, i):
        if i == k:
            raise KeyboardInterrupt  # like SIGINT: no summary is written
        return step(self, i)
    monkeypatch.setattr(trainer.Trainer, "_step", stopping)


def interrupted(tmp_path, monkeypatch, k, *overrides, name="run"):
    """A run stopped before step k (checkpoints every 5 steps), as a kill would leave it."""
    run_dir = tmp_path / name
    with monkeypatch.context() as m:
        stop_at_step(m, k)
        with pytest.raises(KeyboardInterrupt):
            trainer.run(make_cfg(*RESUMABLE, *overrides), run_dir, threads=1)
    assert not (run_dir / "summary.json").exists()
    return run_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert trainer.run(make_cfg(*RESUMABLE), run_dir, threads=1) == "completed"
    return metrics_file.read_metrics(run_dir / "metrics.csv")


def assert_same_metrics(run_dir, reference):
    got = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert got["step"].tolist() == reference["step"].tolist()
    for column in metrics_file.COLUMNS[:-1]:  # all but time_s
        np.testing.assert_array_equal(got[column], reference[column], err_msg=column)


def test_foreign_metrics_csv_is_refused_and_left_untouched(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    foreign = "epoch,train_loss,val_loss\n0,1.5,1.7\n1,1.2,1.4\n"
    (run_dir / "metrics.csv").write_text(foreign)
    for overwrite in ("false", "true"):
        with pytest.raises(RunFileError, match=r"metrics.csv: not a file dsmexp wrote .*'epoch,train_loss"):
            trainer.run(make_cfg(*TINY, f"overwrite={overwrite}"), run_dir)
    assert (run_dir / "metrics.csv").read_text() == foreign
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.csv"]


def test_foreign_summary_and_checkpoint_are_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"accuracy": 0.9}')
    with pytest.raises(RunFileError, match="summary.json: not a file dsmexp wrote"):
        identity.check_existing_run(make_cfg(*TINY, "overwrite=true"), run_dir)
    (run_dir / "summary.json").unlink()
    torch.save({"state_dict": {"w": torch.ones(2)}}, run_dir / "checkpoint.pt")
    with pytest.raises(RunFileError, match="checkpoint.pt: not a file dsmexp wrote"):
        trainer.run(make_cfg(*TINY), run_dir)


def test_older_metrics_headers_are_recognised_from_the_columns():
    assert metrics_file.is_metrics_header(metrics_file.COLUMNS)
    older = [c for c in metrics_file.COLUMNS if c not in ("esm_emp", "grad_cos")]
    assert metrics_file.is_metrics_header(older)
    assert not metrics_file.is_metrics_header(["step", "loss", "epoch", "time_s"])
    assert not metrics_file.is_metrics_header(["loss", "step", "time_s"])  # out of order
    assert not metrics_file.is_metrics_header(["step", "loss"])


def test_a_run_stopped_in_the_end_of_run_window_finishes_without_training(tmp_path, monkeypatch, reference):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:  # stopped after the final checkpoint, before score field and summary
        m.setattr(trainer.Trainer, "_save_score_field", stop)
        with pytest.raises(KeyboardInterrupt):
            trainer.run(make_cfg(*RESUMABLE), run_dir, threads=1)
    assert artifacts.load_checkpoint(run_dir / "checkpoint.pt")["steps_done"] == 12
    assert not (run_dir / "summary.json").exists()
    steps = []
    step = trainer.Trainer._step
    monkeypatch.setattr(trainer.Trainer, "_step", lambda self, i: steps.append(i) or step(self, i))
    # grid_size shapes only the score field: another value finishes the same run
    assert trainer.run(make_cfg(*RESUMABLE, "grid_size=5"), run_dir, threads=1) == "completed"
    assert steps == []
    summary = artifacts.read_summary(run_dir)
    assert summary["steps_done"] == 12 and summary["final"]["loss"] == reference["loss"][-1]
    assert np.load(run_dir / "score_field.npz")["score"].shape == (5, 5, 2)
    assert_same_metrics(run_dir, reference)


def test_a_short_metrics_csv_makes_the_resume_start_over_not_report_a_gap(tmp_path, monkeypatch, reference,
                                                                         caplog):
    run_dir = interrupted(tmp_path, monkeypatch, 8)
    lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    (run_dir / "metrics.csv").write_text("".join(lines[:3] + lines[5:]))  # steps 2 and 3 lost
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.trainer"):
        assert trainer.run(make_cfg(*RESUMABLE), run_dir, threads=1) == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "does not hold exactly steps 0..4: steps 2..3 (2 rows) are missing; training again from step 0" \
        in warnings[0]
    assert_same_metrics(run_dir, reference)


def test_a_deleted_metrics_csv_makes_the_resume_start_over(tmp_path, monkeypatch, reference, caplog):
    run_dir = interrupted(tmp_path, monkeypatch, 8)
    (run_dir / "metrics.csv").unlink()
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.trainer"):
        assert trainer.run(make_cfg(*RESUMABLE), run_dir, threads=1) == "completed"
    assert "metrics.csv is missing; training again from step 0" in caplog.text
    assert_same_metrics(run_dir, reference)


def test_rows_cut_short_or_with_the_wrong_field_count_are_dropped_on_resume(tmp_path, monkeypatch, reference):
    run_dir = interrupted(tmp_path, monkeypatch, 8)
    text = (run_dir / "metrics.csv").read_text()
    lines = text.splitlines(keepends=True)
    # a short line among the rows, and `1` left of the next row `11,...` by a kill inside the step field
    (run_dir / "metrics.csv").write_text("".join(lines[:7] + ["7,0.5\r\n"] + lines[7:]) + "1")
    assert trainer.run(make_cfg(*RESUMABLE), run_dir, threads=1) == "completed"
    assert_same_metrics(run_dir, reference)


def test_read_metrics_names_the_file_and_line_of_a_malformed_row(tmp_path):
    path = tmp_path / "metrics.csv"
    header = ",".join(metrics_file.COLUMNS)
    row = ",".join(["0"] + ["1.0"] * (len(metrics_file.COLUMNS) - 1))
    path.write_text(f"{header}\n{row}\n3,1.0\n{row}\n")
    with pytest.raises(RunFileError, match=r"metrics.csv: cannot be read \(line 3 does not have"):
        metrics_file.read_metrics(path)
    path.write_text(f"{header}\n{row}\n{row[:5]}")  # a last row being written: left out
    assert metrics_file.read_metrics(path)["step"].tolist() == [0]


@pytest.mark.parametrize("name, content, match", [
    ("checkpoint.pt", b"PK\x03\x04 truncated", "checkpoint.pt: cannot be read"),
    ("summary.json", b'{"status": "compl', "summary.json: cannot be read .not valid JSON"),
])
def test_a_corrupt_file_gives_one_line_naming_it_and_overwrite_replaces_it(tmp_path, name, content, match):
    run_dir = tmp_path / "run"
    assert trainer.run(make_cfg(*TINY), run_dir) == "completed"
    (run_dir / name).write_bytes(content)
    with pytest.raises(RunFileError, match=match) as err:
        trainer.run(make_cfg(*TINY), run_dir)
    assert len(str(err.value).splitlines()) == 1 and "overwrite=true" in str(err.value)
    assert (run_dir / name).read_bytes() == content
    assert trainer.run(make_cfg(*TINY, "overwrite=true"), run_dir) == "completed"
    assert artifacts.read_summary(run_dir)["status"] == "completed"


class Payload:
    """Unpickling this runs code: what a crafted checkpoint would do with weights_only=False."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoints_load_without_running_code(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "code-ran"
    torch.save({"model": Payload(marker), "optimizer": {}, "noise": None, "steps_done": 1},
               run_dir / "checkpoint.pt")
    with pytest.raises(RunFileError, match="checkpoint.pt: cannot be read"):
        trainer.run(make_cfg(*TINY), run_dir)
    assert not marker.exists()


def test_a_resume_with_another_thread_count_or_chunk_size_warns_once(tmp_path, monkeypatch, caplog):
    threads = torch.get_num_threads()
    try:
        run_dir = interrupted(tmp_path, monkeypatch, 8)
        with caplog.at_level(logging.WARNING, logger="dsmexp.train.trainer"):
            trainer.run(make_cfg(*RESUMABLE, "chunk_size=64"), run_dir, threads=2)
    finally:
        torch.set_num_threads(threads)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "threads=1 before, 2 now; chunk_size=16384 before, 64 now" in warnings[0]
    summary = artifacts.read_summary(run_dir)
    assert (summary["threads"], summary["chunk_size"]) == (2, 64)


def test_non_finite_final_metrics_are_stored_faithfully(tmp_path):
    run_dir = tmp_path / "run"
    cfg = make_cfg(*TINY, "steps=40", "loss=ism", "optimizer=sgd", "optimizer.lr=1e6")
    assert trainer.run(cfg, run_dir) == "diverged"
    text = (run_dir / "summary.json").read_text()
    final = json.loads(text)["final"]
    assert not math.isfinite(final["loss"]) or not math.isfinite(final["grad_norm_ism"])
    assert "null" not in text.split('"final"')[1].split("}")[0]


def test_temporary_files_a_killed_writer_left_are_removed(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    assert trainer.run(make_cfg(*TINY), run_dir) == "completed"
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))


def test_sweeps_sharing_a_directory_never_lose_each_others_plan(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from hydra_plugins.dsmexp_sweeper._core import _record_plan

    def record(i):
        _record_plan(tmp_path / "jobs.json", [{"overrides": [f"seed={i}"], "subdir": f"seed={i}"}])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(record, range(32)))
    plan = json.loads((tmp_path / "jobs.json").read_text())
    assert sorted(job["subdir"] for job in plan) == sorted(f"seed={i}" for i in range(32))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_job_that_finds_its_directory_taken_at_launch_is_skipped_busy_not_failed(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from dsmexp.errors import RunBusy
    from hydra_plugins.dsmexp_sweeper._core import JobsFailed, _finish

    planned = [{"overrides": ["seed=1"], "subdir": "seed=1"}, {"overrides": ["seed=2"], "subdir": "seed=2"}]
    (tmp_path / "jobs.json").write_text(json.dumps(planned))
    returns = [JobReturn(overrides=["seed=1"], status=JobStatus.FAILED,
                         _return_value=RunBusy("sweep/seed=1 is in use by process 123 (one process per run "
                                               "directory); wait for it to finish")),
               JobReturn(overrides=["seed=2"], status=JobStatus.FAILED, _return_value=RuntimeError("boom"))]
    with pytest.raises(JobsFailed) as err:
        _finish(tmp_path, returns, planned)
    assert str(err.value).splitlines()[1:] == ["  seed=2: RuntimeError: boom"]
    plan = {job["subdir"]: job for job in json.loads((tmp_path / "jobs.json").read_text())}
    assert plan["seed=1"]["status"] == "skipped-busy" and "process 123" in plan["seed=1"]["skipped"]
    assert "status" not in plan["seed=2"]
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert any(r.startswith("seed=1,seed=1,") and ",skipped-busy," in r for r in rows), rows


def test_rows_are_fsynced_before_each_checkpoint_that_counts_them(tmp_path, monkeypatch):
    events = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", Path(f"/proc/self/fd/{fd}")
                                                                .resolve().name)), fsync(fd)))
    save = artifacts.save_checkpoint

    def saving(path, state):
        rows = (path.parent / "metrics.csv").read_text().count("\n") - 1
        events.append(("checkpoint", state["steps_done"], rows))
        save(path, state)
    monkeypatch.setattr(artifacts, "save_checkpoint", saving)
    assert trainer.run(make_cfg(*RESUMABLE), tmp_path / "run") == "completed"
    checkpoints = [i for i, e in enumerate(events) if e[0] == "checkpoint"]
    assert [events[i][1] for i in checkpoints] == [5, 10, 12]
    assert all(events[i][2] == events[i][1] for i in checkpoints)  # every row it counts is written
    assert all(events[i - 1] == ("fsync", "metrics.csv") for i in checkpoints)  # and on disk
