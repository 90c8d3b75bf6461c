"""Shared helpers: compose a dsmexp config in-process, or run the real command line in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from dsmexp.cli import CONF_DIR

TINY = ["steps=6", "noise_samples=4", "dataset.n_samples=64", "grid_size=8"]


def make_cfg(*overrides: str) -> DictConfig:
    """The job config `python -m dsmexp <overrides>` would get."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="dsmexp"):
        return compose(config_name="config", overrides=list(overrides))


def run_cli(*args: str, cwd: Path, check: bool = True, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m dsmexp ARGS` in cwd (so outputs/ lands there) and return the finished process."""
    full_env = os.environ | {"HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "dsmexp", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"dsmexp {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_cli_in_process(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`python -m dsmexp ARGS` in this process (no interpreter start-up): its exit code and stderr.
    For commands that stop before training; the subprocess runner above is the real thing."""
    from dsmexp import cli

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["dsmexp", *args])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cli.main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return code, err.getvalue()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
