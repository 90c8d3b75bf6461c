"""The files a run leaves behind (README, What a run leaves behind): metrics.csv, summary.json, checkpoint.pt,
score_field.npz; how they are written so nothing is lost, and how they are read so nothing is faked.

- Writes that replace a file are atomic and fsynced (safe_io.replace_atomically).
- metrics.csv rows are appended and fsynced before each checkpoint that counts them.
- A file dsmexp did not write (another tool's metrics.csv, a JSON without dsmexp's keys, a checkpoint
  without its state) or cannot read (cut short, corrupt) is reported in one line naming the file:
  RunFileError. Checkpoints load with weights_only=True, so a crafted file cannot run code.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsmexp.evaluation import EVAL_METRICS
from dsmexp.objectives import METRICS
from dsmexp.runlock import LOCK_FILE
from dsmexp.safe_io import RunFileError, make_run_dir, replace_text, write_failed  # noqa: F401 - also artifacts.*
from dsmexp.safe_io import foreign as _foreign
from dsmexp.safe_io import open_append as _open_append
from dsmexp.safe_io import refuse_symlink as _refuse_symlink
from dsmexp.safe_io import replace_atomically as _replace_atomically
from dsmexp.safe_io import unreadable as _unreadable

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FIELD_FILE = "score_field.npz"
COLUMNS = ("step", *METRICS, *EVAL_METRICS, "time_s")
FINISHED = ("completed", "diverged")
SUMMARY_KEYS = ("status", "steps_done", "config")
CHECKPOINT_KEYS = ("model", "optimizer", "noise", "steps_done")
FIELD_KEYS = ("grid_x", "grid_y", "score")
# every file written into a run directory, by dsmexp or by Hydra for it (job name dsmexp): none may be a
# symbolic link, as the target would be written through
WRITTEN_FILES = (METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FIELD_FILE, LOCK_FILE, "dsmexp.log",
                 ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")


# ---- metrics.csv -------------------------------------------------------------------------------------

def is_metrics_header(header: Sequence[str]) -> bool:
    """True for a header dsmexp writes now or wrote before: step, then columns of COLUMNS in order,
    then time_s (older versions logged a subset of today's columns)."""
    if len(header) < 2 or header[0] != "step" or header[-1] != "time_s":
        return False
    position = -1
    for name in header:
        if name not in COLUMNS or COLUMNS.index(name) <= position:
            return False
        position = COLUMNS.index(name)
    return True


def _parse_row(row: list[str], width: int) -> list[float] | None:
    """A data row as numbers, or None when it has the wrong number of fields or a bad value."""
    if len(row) != width:
        return None
    try:
        values = [float(v) for v in row]
    except ValueError:
        return None
    return values if values[0].is_integer() and values[0] >= 0 else None


def _read_table(path: Path) -> tuple[list[str], list[list[float]], list[int]]:
    """metrics.csv as (header, parsed rows, line numbers of rows that do not parse).

    A last line without its newline is a row cut short by a stop: it is left out and not reported.
    """
    try:
        with Path(path).open(newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise _unreadable(path, str(err)) from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    rows = list(csv.reader(io.StringIO("".join(lines))))
    if not rows:
        raise _unreadable(path, "empty, no header")
    header = rows[0]
    if not is_metrics_header(header):
        raise _foreign(path, f"its header starts {','.join(header[:3])[:60]!r}")
    parsed, bad = [], []
    for number, row in enumerate(rows[1:], start=2):
        values = _parse_row(row, len(header))
        if values is None:
            if row:
                bad.append(number)
            continue
        parsed.append(values)
    return header, parsed, bad


def check_metrics_header(path: Path) -> None:
    """Raise RunFileError unless path is a metrics.csv dsmexp wrote (only its first line is read)."""
    try:
        with Path(path).open(newline="") as f:
            header = next(csv.reader([f.readline()]), [])
    except (OSError, UnicodeDecodeError) as err:
        raise _unreadable(path, str(err)) from None
    if not is_metrics_header(header):
        raise _foreign(path, f"its header starts {','.join(header[:3])[:60]!r}")


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as a dict of column name -> float array (step as int), through tables.load_metrics.

    Every reader of metrics.csv goes through there. A last row cut short by a stop is left out; any other
    malformed row, or a file dsmexp did not write, raises RunFileError naming the file.
    """
    from dsmexp.tables import load_metrics  # tables builds on this module's file names

    table = load_metrics(path)
    return {name: table[name].to_numpy() for name in table.columns}


def rows_before(path: Path, first_step: int) -> tuple[list[list[float]], str | None]:
    """For a resume at first_step: the logged rows of steps 0..first_step-1 and, when they are not all
    there exactly once, why not. Rows with the wrong number of fields are dropped."""
    if not Path(path).exists():
        return [], (f"{path} is missing" if first_step > 0 else None)
    header, rows, _ = _read_table(path)
    if tuple(header) != COLUMNS:
        raise RunFileError(f"{path}: written by an older dsmexp with other columns, so this run cannot be "
                           "continued; pass overwrite=true to train it again")
    kept = [r for r in rows if r[0] < first_step]
    steps = [int(r[0]) for r in kept]
    if steps != list(range(first_step)):
        missing = sorted(set(range(first_step)) - set(steps))
        why = (f"steps {missing[0]}..{missing[-1]} ({len(missing)} rows) are missing" if missing
               else "some steps are logged twice")
        return [], f"{path} does not hold exactly steps 0..{first_step - 1}: {why}"
    return kept, None


class MetricsWriter:
    """Appends rows to metrics.csv as training goes. It starts from `kept` (the rows a resume keeps,
    from rows_before), rewriting the file atomically; sync() makes the rows so far durable."""

    def __init__(self, path: Path, kept: list[list[float]] | None = None) -> None:
        self.path = path

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
                self._write_rows(f, kept or [])
        _replace_atomically(path, write)
        self._file = _open_append(path, newline="")

    @staticmethod
    def _write_rows(f: Any, rows: Iterable[Sequence[float]]) -> None:
        writer = csv.writer(f)
        for row in rows:
            writer.writerow([int(row[0]), *(repr(float(v)) for v in row[1:])])

    def write(self, rows: Iterable[Sequence[float]]) -> None:
        try:
            self._write_rows(self._file, rows)
            self._file.flush()
        except OSError as err:
            raise write_failed(self.path, err) from None

    def sync(self) -> None:
        """fsync the rows written so far (called before every checkpoint that counts them)."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:
            raise write_failed(self.path, err) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # the rows that matter were synced with the checkpoint

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- summary.json --------------------------------------------------------------------------------------

def write_json(path: Path, obj: dict) -> None:
    """Write obj as JSON atomically. NaN and inf are kept as NaN / Infinity (Python's json reads them)."""
    replace_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")



def read_summary(run_dir: Path) -> dict | None:
    """summary.json of a run, or None when the run never wrote one; RunFileError when it is not ours
    or cannot be read."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise _unreadable(path, str(err)) from None
    except json.JSONDecodeError as err:
        raise _unreadable(path, f"not valid JSON: {err}") from None
    if not isinstance(summary, dict) or not all(k in summary for k in SUMMARY_KEYS):
        raise _foreign(path, f"it lacks the keys {', '.join(SUMMARY_KEYS)}")
    problem = _summary_problem(summary) or config_problem(summary["config"])
    if problem:
        raise _unreadable(path, problem)
    return summary


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary_problem(summary: dict) -> str | None:
    """What is wrong with the values of a summary.json that has dsmexp's keys, or None."""
    if not isinstance(summary["status"], str) or not summary["status"]:
        return f"status is {summary['status']!r}, not a word such as completed"
    for key in ("steps_done", "steps"):
        if key in summary and not _is_count(summary[key]):
            return f"{key} is {summary[key]!r}, not a whole number of steps"
    if summary.get("diverged_step") is not None and not _is_count(summary["diverged_step"]):
        return f"diverged_step is {summary['diverged_step']!r}, not a step"
    if summary.get("wall_time_s") is not None and not _is_number(summary["wall_time_s"]):
        return f"wall_time_s is {summary['wall_time_s']!r}, not a number of seconds"
    if not isinstance(summary.get("final", {}), dict):
        return "final is not a table of metrics"
    return None


def config_problem(config: object) -> str | None:
    """What a stored run config lacks of the settings every reader of a run needs (loss.name,
    dataset.name, sigma, seed, noise_samples, steps), or None."""
    if not isinstance(config, dict) or not config:
        return f"config is {json.dumps(config)[:40]}, not the run's settings"
    for group in ("loss", "dataset"):
        if not isinstance(config.get(group), dict) or not isinstance(config[group].get("name"), str):
            return f"config lacks {group}.name"
    if not _is_number(config.get("sigma")):
        return f"config.sigma is {config.get('sigma')!r}, not a number"
    for key in ("seed", "noise_samples", "steps"):
        if not _is_count(config.get(key)):
            return f"config.{key} is {config.get(key)!r}, not a whole number"
    return None


# ---- checkpoint.pt and score_field.npz -------------------------------------------------------------------

def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save(state) atomically: a crash mid-write leaves the previous checkpoint intact.

    Serialised in memory first, so a full disk fails as an OSError of the write, not inside torch."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _replace_atomically(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def load_checkpoint(path: Path) -> dict | None:
    """checkpoint.pt (tensors and plain values only: weights_only=True), or None when there is none."""
    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file; all mean the same
        raise _unreadable(path, f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
                          ) from None
    if not isinstance(state, dict) or not all(k in state for k in CHECKPOINT_KEYS):
        raise _foreign(path, f"it lacks the keys {', '.join(CHECKPOINT_KEYS)}")
    return state


def save_score_field(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """score_field.npz: grid_x, grid_y, score[i, j] at (grid_x[j], grid_y[i]), reference alike, data."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
    _replace_atomically(path, write)


def read_score_field(path: Path) -> dict[str, np.ndarray] | None:
    """score_field.npz as arrays, or None when there is none. Every array is read with allow_pickle=False,
    so a pickled object in it is never run: RunFileError naming the file, as for any file dsmexp cannot
    read."""
    if not Path(path).exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as field:
            arrays = {name: field[name] for name in field.files}
    except Exception as err:  # noqa: BLE001 - numpy raises several types for a bad or pickled archive
        raise _unreadable(path, f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
                          ) from None
    if not set(FIELD_KEYS) <= set(arrays):
        raise _foreign(path, f"it lacks the arrays {', '.join(FIELD_KEYS)}")
    return arrays


def check_score_field(path: Path) -> None:
    read_score_field(path)


# ---- the run directory as a whole -------------------------------------------------------------------------

def check_run_files(run_dir: Path, overwrite: bool = False) -> None:
    """Raise RunFileError for the first file under a dsmexp name in run_dir that dsmexp did not write
    or (unless overwrite, which will replace it) cannot read, or that is a symbolic link (WRITTEN_FILES).
    Files under other names are never touched."""
    run_dir = Path(run_dir)
    for name in WRITTEN_FILES:
        _refuse_symlink(run_dir / name)
    checks = [(METRICS_FILE, check_metrics_header), (SUMMARY_FILE, lambda p: read_summary(p.parent)),
              (CHECKPOINT_FILE, load_checkpoint), (FIELD_FILE, check_score_field)]
    for name, check in checks:
        if not (run_dir / name).exists():
            continue
        try:
            check(run_dir / name)
        except RunFileError as err:
            if err.foreign or not overwrite:
                raise


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporary files a killed writer left (only called by the process that owns run_dir)."""
    for name in (METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FIELD_FILE):
        for tmp in Path(run_dir).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def remove_run_files(run_dir: Path) -> None:
    """Delete what an earlier run wrote here (used only with overwrite=true, after check_run_files has
    found no foreign file)."""
    for name in (METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FIELD_FILE):
        (Path(run_dir) / name).unlink(missing_ok=True)

