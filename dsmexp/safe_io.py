"""Writing run files so nothing is lost, and the one-line error for a file that cannot be read,
was not written by dsmexp, or cannot be written.

Writes that replace a file go to a uniquely named temporary file in the same directory (two writers
never share one), are fsynced, then renamed over the old file; a failed write removes its temporary
file and becomes a RunFileError naming the file and what to do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dsmexp.config import ConfigError


class RunFileError(ConfigError):
    """A run file that dsmexp did not write (foreign) or cannot read (corrupt), or cannot write."""

    def __init__(self, message: str, foreign: bool = False, reason: str | None = None) -> None:
        super().__init__(message)
        self.foreign = foreign
        self.reason = reason or message  # what is wrong, without what to do (for reports and tables)


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


def open_append(path: Path, newline: str | None = None) -> Any:
    """path opened for appending text, never through a symbolic link (RunFileError naming it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
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
