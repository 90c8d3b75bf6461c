"""Writing files so nothing is lost, the one-line error for a file that cannot be read, was not written
by dsmexp, or cannot be written, and the one bounded, reported wait for an exclusive file lock.

Writes that replace a file go to a uniquely named temporary file in the same directory (two writers
never share one), are fsynced, then renamed over the old file; a failed write removes its temporary
file and becomes a RunFileError naming the file and what to do.

Every lock is a filelock.FileLock (an OS advisory lock, flock on Linux, dropped by the kernel however its
holder exits), taken by take_lock: the lock file is never deleted (deleting a lock file another process
is about to lock would let two processes hold "the" lock), never followed through a symlink, and holds
its holder's pid for the messages. Every wait is bounded and reported: after NOTICE_AFTER_S the waiting
process says whom it waits for and why, every HEARTBEAT_S after that, and it gives up (LockTimeout, one
line) at its limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from dsmexp.errors import LockTimeout, RunFileError

FILE_MODE = 0o666  # what a new file may allow; the umask takes away the rest, as for any other program
NOTICE_AFTER_S = 3.0  # a wait for a lock is reported once it has lasted this long
HEARTBEAT_S = 30.0  # and again every this many seconds

log = logging.getLogger(__name__)


def unreadable(path: Path, why: str) -> RunFileError:
    reason = f"{path}: cannot be read ({why})"
    return RunFileError(f"{reason}; pass overwrite=true to train this run again from the start, or move "
                        "the file away", reason=reason)


def foreign(path: Path, why: str) -> RunFileError:
    reason = f"{path}: not a file dsmexp wrote ({why})"
    return RunFileError(f"{reason}; move it away or choose another hydra.run.dir / hydra.sweep.dir "
                        "(dsmexp never overwrites it)", foreign=True, reason=reason)


def symlinked(path: Path) -> RunFileError:
    """The one line for a symbolic link where dsmexp writes a file: it never writes through one."""
    try:
        target = f" to {os.readlink(path)}"
    except OSError:
        target = ""
    reason = f"{path}: a symbolic link{target}, and dsmexp never writes through one"
    return RunFileError(f"{reason}; remove the link or choose another hydra.run.dir / hydra.sweep.dir",
                        foreign=True, reason=reason)


def refuse_symlink(path: Path) -> None:
    """Raise RunFileError (symlinked) when path is a symbolic link, dangling or not."""
    if Path(path).is_symlink():
        raise symlinked(path)


def shown_path(path: Path) -> str:
    """A path as the user named it: relative to the working directory when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no other way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_append(path: Path, newline: str | None = None) -> Any:
    """path opened for appending text, never through a symbolic link (RunFileError naming it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as err:
        if Path(path).is_symlink():
            raise symlinked(path) from None
        raise write_failed(path, err) from None
    return os.fdopen(fd, "a", newline=newline)


def write_failed(path: Path, err: OSError, action: str = "write") -> RunFileError:
    """The one line for a write that the file system refused (full disk, read-only, not a directory)."""
    why = err.strerror or str(err)
    if isinstance(err, NotADirectoryError):
        why = "a parent of it is a file, not a directory"
    return RunFileError(f"cannot {action} {path}: {why}; free space or fix the directory, then run the "
                        "same command again (it resumes from the last checkpoint)")


def replace_atomically(path: Path, write: Any) -> None:
    """Call write(tmp_path), fsync it, then rename it over path: readers never see a partial file.

    The temporary file has a unique name (two writers never share one) and is removed on any failure.
    A path that is a symbolic link is refused (RunFileError), not replaced.
    """
    refuse_symlink(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, FILE_MODE & ~current_umask())  # mkstemp makes it 0600; a result file follows the umask
    except OSError as err:
        raise write_failed(path, err) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_failed(path, err) from None
        raise


def make_run_dir(run_dir: Path) -> None:
    """Create run_dir (and its parents), or raise one line saying why it cannot be."""
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failed(Path(run_dir), err, "create") from None


def replace_text(path: Path, text: str) -> None:
    """Write a text file atomically (readers see the old file or the new one, never a partial one)."""
    replace_atomically(path, lambda tmp: tmp.write_text(text))


# ---- the one lock helper -----------------------------------------------------------------------------

def notice(message: str) -> None:
    """A progress line: to the run's log when logging is set up (inside a run), else to stderr (the
    checks before a run, a notebook)."""
    if logging.getLogger().handlers:
        log.info(message)
    else:
        sys.stderr.write(f"dsmexp: {message}\n")
        sys.stderr.flush()


def _write_pid(fd: int) -> None:
    """What a new holder writes into the lock file (filelock's on_acquired): its pid, for the messages."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def lock_holder(path: Path) -> str:
    """The pid the lock file at `path` names ('?' when it names none)."""
    try:
        return Path(path).read_text().strip() or "?"
    except OSError:
        return "?"


def take_lock(path: Path, doing: str, limit_s: float | None) -> FileLock:
    """The exclusive lock on the file `path` (created if missing, with this process's pid in it), held
    until its release(). With limit_s None, only if it is free now (filelock.Timeout otherwise); else
    waiting at most limit_s for the holder, who `doing` ("is compiling ..."): said after NOTICE_AFTER_S,
    then every HEARTBEAT_S; LockTimeout at the limit. A symlink or an unwritable file is a RunFileError."""
    lock = FileLock(path, thread_local=False, preserve_lock_file=True, on_acquired=_write_pid)
    start = time.monotonic()
    wait_s = 0.0 if limit_s is None else min(NOTICE_AFTER_S, limit_s)
    while True:
        try:
            lock.acquire(timeout=wait_s)
            return lock
        except Timeout:
            waited = time.monotonic() - start
            if limit_s is None:
                raise
            if waited >= limit_s:
                raise LockTimeout(f"gave up after {limit_s:.0f} s waiting for process {lock_holder(path)}, "
                                  f"which {doing} (lock {path})") from None
            notice(f"waiting for process {lock_holder(path)}, which {doing} ({waited:.0f} s so far; at "
                   f"most {limit_s:.0f} s)")
            wait_s = min(HEARTBEAT_S, limit_s - waited)
        except OSError as err:
            if Path(path).is_symlink():
                raise symlinked(path) from None
            raise write_failed(path, err) from None


@contextlib.contextmanager
def exclusive(path: Path, doing: str, limit_s: float = 600.0) -> Iterator[None]:
    """Wait for (bounded and reported, see take_lock), then hold, the exclusive lock on the file `path` for
    the `with` block. For short critical sections (creating an MLflow experiment) and the fused kernel's
    build."""
    lock = take_lock(path, doing, limit_s)
    try:
        yield
    finally:
        lock.release()
