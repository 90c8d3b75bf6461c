"""Every wait for a lock is bounded and says whom it waits for: the sweep directory's lock, the MLflow
store's, the kernel build's (tests/core/test_fused.py)."""

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from dsmexp import errors, safe_io
from dsmexp.records import runlock

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('held', flush=True); time.sleep(60)\n")


@pytest.fixture
def held(tmp_path):
    """A process holding the flock of tmp_path/.dsmexp.lock, as a running sweep or run would."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / runlock.LOCK_FILE)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_wait_for_a_held_lock_is_reported_then_given_up_in_one_line(tmp_path, held, monkeypatch, capsys):
    monkeypatch.setattr(safe_io, "NOTICE_AFTER_S", 0.2)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # notices go to stderr
    start = time.monotonic()
    with pytest.raises(errors.LockTimeout, match=rf"^gave up after 1 s waiting for process {held.pid}, "
                       "which is updating the plan"):
        runlock.RunLock(tmp_path, wait=True, doing="is updating the plan", limit_s=1.0).acquire()
    assert time.monotonic() - start < 5
    assert f"dsmexp: waiting for process {held.pid}, which is updating the plan" in capsys.readouterr().err
    with pytest.raises(errors.LockTimeout, match=f"waiting for process {held.pid}, which is creating"):
        with safe_io.exclusive(tmp_path / runlock.LOCK_FILE, "is creating an experiment", limit_s=0.5):
            pass
    with pytest.raises(errors.RunBusy, match=f"in use by process {held.pid}"):  # a run never waits
        runlock.RunLock(tmp_path).acquire()


def test_a_lock_freed_while_waiting_is_taken(tmp_path, held):
    threading.Timer(1.0, held.kill).start()  # the holder dies during the wait: the system frees its lock
    lock = runlock.RunLock(tmp_path, wait=True, doing="is updating the plan", limit_s=30.0).acquire()
    try:
        assert runlock.holder_pid(tmp_path) == os.getpid()
    finally:
        lock.release()


def test_the_lock_file_outlives_its_holder_and_names_the_last_one(tmp_path):
    """Released, the lock file stays (deleting it could let two processes hold the lock) and keeps the pid
    of its last holder; the next holder takes it at once and writes its own."""
    with runlock.RunLock(tmp_path):
        assert runlock.holder_pid(tmp_path) == os.getpid()
        assert f"in use by process {os.getpid()}" in runlock.is_busy(tmp_path)
    assert (tmp_path / runlock.LOCK_FILE).is_file() and runlock.is_busy(tmp_path) is None
    assert runlock.holder_pid(tmp_path) == os.getpid()
    child = subprocess.run([sys.executable, "-c", "import os, sys\nfrom dsmexp.records import runlock\n"
                            "with runlock.RunLock(sys.argv[1]): print(os.getpid())", str(tmp_path)],
                           capture_output=True, text=True, timeout=60, check=True)
    assert runlock.holder_pid(tmp_path) == int(child.stdout)
