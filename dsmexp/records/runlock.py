"""One process per run directory: an OS advisory lock (filelock, flock on Linux) on `.dsmexp.lock`, held
for a whole run.

The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a stopped run
never leaves a stale lock behind. The lock file holds the holder's pid, for the message the next process
prints. It is never deleted: deleting a lock file that another process is about to lock would let two
processes hold "the" lock at once. A wait for the lock (RunLock(wait=True)) is bounded and reported
(safe_io.take_lock).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from filelock import FileLock, Timeout

from dsmexp.errors import RunBusy
from dsmexp.safe_io import take_lock

LOCK_FILE = ".dsmexp.lock"


class RunLock:
    """Exclusive ownership of one run directory; `with RunLock(run_dir):` or acquire() / release()."""

    def __init__(self, run_dir: Path, wait: bool = False, doing: str = "", limit_s: float = 600.0) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.wait, self.doing, self.limit_s = wait, doing or f"holds {self.run_dir}", limit_s
        self._lock: FileLock | None = None

    def acquire(self) -> RunLock:
        """Take the lock; without `wait`, raise RunBusy naming the holder's pid when another has it; with
        it, wait at most limit_s (safe_io.take_lock: reported, then LockTimeout).

        (A sweep directory's lock is taken with wait=True for the moments its jobs.json and runs.csv
        are rewritten, so sweeps sharing a directory never lose each other's plan.)"""
        try:
            self._lock = take_lock(self.path, self.doing, self.limit_s if self.wait else None)
        except Timeout:
            raise RunBusy(busy_message(self.run_dir)) from None
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_message(run_dir: Path) -> str:
    return (f"{run_dir} is in use by process {holder_pid(run_dir) or '?'} (one process per run directory); "
            "wait for it to finish, or choose another hydra.run.dir / hydra.sweep.dir")


def holder_pid(run_dir: Path) -> int | None:
    """The pid written by the lock's last holder (None when there is no lock file or it is empty)."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_busy(run_dir: Path) -> str | None:
    """The RunBusy message when another process holds run_dir's lock now, else None. A read-only probe
    (a shared flock tried and dropped), which a read-only run directory allows; filelock has no such call."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None  # no lock file: nobody ever locked it (or it is unreadable or a link, and not ours)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return busy_message(run_dir)
    finally:
        os.close(fd)
    return None
