"""The errors dsmexp reports as one line, before or instead of a traceback (docs/architecture.md, Errors).

Every one is a DsmexpError, a plain Exception: no Hydra type reaches a notebook or a script calling
dsmexp's Python API. Where Hydra runs (the command line, the sweeper plugin) the top layer turns a
DsmexpError into Hydra's one-line report.

- ConfigError: a bad setting, naming the key and what is allowed, raised before any run file is written;
  `sweep_skippable` marks a setting that makes one job of a sweep meaningless (DSM at sigma = 0), so the
  sweep skips that job and runs the others.
- RunFileError: a run file dsmexp did not write (`foreign`), cannot read, or cannot write.
- Busy kinds: RunBusy (another live process owns the run directory) and LockTimeout (a bounded wait for
  a lock ran out; the message names the holder).
"""

from __future__ import annotations


class DsmexpError(Exception):
    """Anything dsmexp reports in one line: the message says what is wrong and what to do."""


class ConfigError(DsmexpError):
    """A bad setting, reported as one line naming the key, before any run file is written."""

    def __init__(self, message: str, sweep_skippable: bool = False) -> None:
        super().__init__(message)
        self.sweep_skippable = sweep_skippable


class RunFileError(DsmexpError):
    """A run file that dsmexp did not write (foreign) or cannot read (corrupt), or cannot write."""

    def __init__(self, message: str, foreign: bool = False, reason: str | None = None) -> None:
        super().__init__(message)
        self.foreign = foreign
        self.reason = reason or message  # what is wrong, without what to do (for reports and tables)


class BusyError(DsmexpError):
    """Something another process holds now (a run directory, a build's lock)."""


class RunBusy(BusyError):
    """Another live process holds the run directory's lock."""


class LockTimeout(BusyError):
    """A lock was not free within the wait's limit; the message names its holder."""
