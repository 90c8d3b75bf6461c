"""Shared helpers: compose a dsmexp config in-process, or run the real command line in a subprocess.

The session builds the fused kernel once into a kernel cache of its own (a temporary directory named by
DSMEXP_KERNEL_CACHE, which every subprocess inherits), so no test reads or writes the user's cache and no
test pays a build. A subprocess that times out in any test has the last lines of its output printed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# before anything imports the fused kernel's build (core/objectives/fused_build.py): the session's own
# kernel cache
_SESSION_CACHE_ENV = "DSMEXP_TEST_SESSION_KERNEL_CACHE"  # set by the first process; xdist workers reuse it
if not os.environ.get(_SESSION_CACHE_ENV):
    os.environ[_SESSION_CACHE_ENV] = tempfile.mkdtemp(prefix="dsmexp-test-kernels-")
    _OWN_CACHE = True
else:
    _OWN_CACHE = False
os.environ["DSMEXP_KERNEL_CACHE"] = os.environ[_SESSION_CACHE_ENV]

from omegaconf import DictConfig  # noqa: E402

from dsmexp.config import compose  # noqa: E402
from dsmexp.core.objectives import fused_build  # noqa: E402

SESSION_KERNEL_CACHE = Path(os.environ[_SESSION_CACHE_ENV])

TINY = ["steps=6", "noise_samples=4", "dataset.n_samples=64", "grid_size=8"]


def make_cfg(*overrides: str) -> DictConfig:
    """The job config `python -m dsmexp <overrides>` would get."""
    return compose(overrides)


def run_cli(*args: str, cwd: Path, check: bool = True, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m dsmexp ARGS` in cwd (so outputs/ lands there) and return the finished process."""
    full_env = os.environ | {"HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "dsmexp", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)  # a timeout: see the hook below
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


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the fused kernel once, into the session's cache, before the first test (if it builds here)."""
    try:
        fused_build.load()
    except fused_build.BuildError:
        pass  # the tests that need it are skipped, and say why


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE:
        shutil.rmtree(SESSION_KERNEL_CACHE, ignore_errors=True)


def output_tail(text: str | bytes | None, lines: int = 30) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").rstrip().splitlines()[-lines:]) or "(nothing)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test that failed on a subprocess timeout shows the last lines the child printed."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and isinstance(call.excinfo.value, subprocess.TimeoutExpired):
        err = call.excinfo.value
        command = " ".join(str(a) for a in err.cmd) if isinstance(err.cmd, (list, tuple)) else str(err.cmd)
        command = command.splitlines()[0] if command.strip() else "?"
        report.sections.append((f"subprocess timed out after {err.timeout} s: {command[:300]}",
                                f"--- last stdout ---\n{output_tail(err.stdout)}\n"
                                f"--- last stderr ---\n{output_tail(err.stderr)}"))
