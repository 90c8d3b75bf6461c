"""Ctrl-C during training: one line and exit code 130, the rows logged so far and a checkpoint at that
step, and the same command resumes to the numbers of an uninterrupted run."""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsmexp.records import artifacts, metrics_file
from dsmexp.train import trainer
from tests.conftest import make_cfg, run_cli_in_process

RUN = ["kernel=torch", "steps=100000", "dataset.n_samples=64", "noise_samples=4", "checkpoint_every=5",
       "eval_every=3", "eval_samples=50", "grid_size=8", "threads=1"]
LINE = re.compile(r"dsmexp: interrupted at step (\d+); the same command resumes")


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))[1:]


def _last_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.strip()][-1]


@pytest.mark.slow
def test_ctrl_c_gives_one_line_and_the_same_command_resumes(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    env = os.environ | {"HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    # Ctrl-C's default action in the child, even where this suite was started in the background by a
    # shell without job control (which starts it with SIGINT ignored, and children inherit that)
    proc = subprocess.Popen([sys.executable, "-m", "dsmexp", *RUN, "hydra.run.dir=run"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = run_dir / metrics_file.METRICS_FILE
    try:
        deadline = time.monotonic() + 120
        while not (metrics.exists() and metrics.read_text().count("\n") > 8):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never logged 8 steps"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    first = LINE.fullmatch(_last_line(stderr))
    assert first, stderr[-2000:]
    done = int(first.group(1))
    assert [int(r[0]) for r in _rows(metrics)] == list(range(done))
    assert artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT_FILE)["steps_done"] == done
    assert not (run_dir / artifacts.SUMMARY_FILE).exists()
    before = _rows(metrics)

    # the same command again (in this process), interrupted 6 steps after it resumed
    step = trainer.Trainer._step

    def ctrl_c_later(self, i):
        if i == done + 5:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, i)
    monkeypatch.setattr(trainer.Trainer, "_step", ctrl_c_later)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts from a terminal
    try:
        code, stderr = run_cli_in_process(*RUN, "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run put it back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert _last_line(stderr) == f"dsmexp: interrupted at step {done + 6}; the same command resumes"
    assert "Traceback" not in stderr
    assert f"resuming {run_dir} from step {done}" in (run_dir / "dsmexp.log").read_text()
    after = _rows(metrics)
    assert after[:done] == before and [int(r[0]) for r in after] == list(range(done + 6))

    # an uninterrupted run logs the same numbers (time_s aside) at every step
    monkeypatch.setattr(trainer.Trainer, "_step", step)
    cfg = make_cfg(*[a for a in RUN if not a.startswith("steps=")], f"steps={done + 8}")
    trainer.run(cfg, tmp_path / "reference", threads=1)
    reference = _rows(tmp_path / "reference" / metrics_file.METRICS_FILE)[:done + 6]
    assert [r[:-1] for r in after] == [r[:-1] for r in reference]
