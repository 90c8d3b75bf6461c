"""The files a run leaves behind (DESIGN.md section 5): metrics.csv, summary.json, checkpoint.pt,
score_field.npz. Writes that replace a file go through a temporary file and an atomic rename."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsmexp.evaluation import EVAL_METRICS
from dsmexp.objectives import METRICS

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FIELD_FILE = "score_field.npz"
COLUMNS = ("step", *METRICS, *EVAL_METRICS, "time_s")
FINISHED = ("completed", "diverged")


def _replace_atomically(path: Path, write: Any) -> None:
    """Call write(tmp_path), then rename tmp_path over path so readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class MetricsWriter:
    """Appends rows to metrics.csv as training goes; on resume keeps only the rows before `first_step`."""

    def __init__(self, path: Path, first_step: int = 0) -> None:
        self.path = path
        if path.exists():
            self._truncate(first_step)
        else:
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)

    def _truncate(self, first_step: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < first_step]
        if len(kept) != len(rows):
            def write(tmp: Path) -> None:
                with tmp.open("w", newline="") as f:
                    csv.writer(f).writerows(kept)
            _replace_atomically(self.path, write)

    def write(self, rows: Iterable[Sequence[float]]) -> None:
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for row in rows:
                writer.writerow([int(row[0]), *(repr(float(v)) for v in row[1:])])
            f.flush()


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as a dict of column name -> float array (step as int), read by tables.load_metrics."""
    from dsmexp.tables import load_metrics  # tables builds on this module's file names

    table = load_metrics(path)
    return {name: table[name].to_numpy() for name in table.columns}


def write_json(path: Path, obj: dict) -> None:
    """Write obj as JSON (NaN and inf become null) atomically."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False)
    _replace_atomically(path, lambda tmp: tmp.write_text(text + "\n"))


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read_summary(run_dir: Path) -> dict | None:
    """summary.json of a run, or None when the run never wrote one."""
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save(state) atomically: a crash mid-write leaves the previous checkpoint intact."""
    _replace_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def save_score_field(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """score_field.npz: grid_x, grid_y, score[i, j] at (grid_x[j], grid_y[i]), reference alike, data."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
    _replace_atomically(path, write)


def remove_run_files(run_dir: Path) -> None:
    """Delete what an earlier run wrote here (used only with overwrite=true)."""
    for name in (METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FIELD_FILE):
        (Path(run_dir) / name).unlink(missing_ok=True)
