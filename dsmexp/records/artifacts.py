"""The files a run leaves behind (README, What a run leaves behind): metrics.csv, summary.json, checkpoint.pt,
score_field.npz; how they are written so nothing is lost, and how they are read so nothing is faked.

- Writes that replace a file are atomic and fsynced (safe_io.replace_atomically).
- metrics.csv rows are appended and fsynced before each checkpoint that counts them.
- A file dsmexp did not write (another tool's metrics.csv, a JSON without dsmexp's keys, a checkpoint
  without its state) or cannot read (cut short, corrupt) is reported in one line naming the file:
  RunFileError. Checkpoints load with weights_only=True, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from dsmexp.errors import RunFileError
from dsmexp.records.metrics_file import METRICS_FILE, check_metrics_header
from dsmexp.records.runlock import LOCK_FILE
from dsmexp.safe_io import foreign as _foreign
from dsmexp.safe_io import refuse_symlink as _refuse_symlink
from dsmexp.safe_io import replace_atomically as _replace_atomically
from dsmexp.safe_io import replace_text
from dsmexp.safe_io import unreadable as _unreadable

SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FIELD_FILE = "score_field.npz"
FINISHED = ("completed", "diverged")
SUMMARY_KEYS = ("status", "steps_done", "config")
CHECKPOINT_KEYS = ("model", "optimizer", "noise", "steps_done")
FIELD_KEYS = ("grid_x", "grid_y", "score")
# every file written into a run directory, by dsmexp or by Hydra for it (job name dsmexp): none may be a
# symbolic link, as the target would be written through
WRITTEN_FILES = (METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FIELD_FILE, LOCK_FILE, "dsmexp.log",
                 ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")


# ---- metrics.csv -------------------------------------------------------------------------------------

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

