"""levels.csv, the per-level table of a multi-scale run (schedule.kind geometric or continuous): one row
per step and noise level, beside metrics.csv and written with it (README, The diffusion regime).

Columns: step, level (0 = the smallest sigma), sigma (the level's, or its bin's geometric centre),
weight (lambda at that sigma), count (points of the step at that level), the paper's terms at that
level on the same z as metrics.csv's (norm, fit_ism, fit_dsm and their standard errors, unweighted;
loss, the trained objective's mean there), and at evaluation steps esm, esm_rel, esm_data and
esm_data_rel against the exact score of q_sigma at that level (NaN between evaluations).

    dsmexp.load_levels("outputs/runs/experiment=multiscale")   # a DataFrame, one row per step and level
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from dsmexp.core.evaluation import LEVEL_EVAL
from dsmexp.core.objectives.levels import LEVEL_TERMS
from dsmexp.errors import RunFileError
from dsmexp.records.metrics_file import MetricsWriter, whole_lines
from dsmexp.safe_io import foreign, unreadable

LEVELS_FILE = "levels.csv"
LEVEL_COLUMNS = ("step", "level", "sigma", "weight", *LEVEL_TERMS, *LEVEL_EVAL)


def levels_writer(run_dir: Path, kept: list[list[float]] | None = None) -> MetricsWriter:
    """The writer of a run's levels.csv, starting from the rows a resume keeps (levels_before)."""
    return MetricsWriter(Path(run_dir) / LEVELS_FILE, kept, columns=LEVEL_COLUMNS, ints=2)


def load_levels(run: str | Path) -> pd.DataFrame:
    """A multi-scale run's levels.csv (the run directory or the file): step and level int64, the rest
    float64. A last line without its newline (a row cut short by a stop) is left out; a file dsmexp did
    not write raises RunFileError naming it."""
    path = Path(run)
    if path.is_dir():
        path = path / LEVELS_FILE
    lines = whole_lines(path)
    if not lines or lines[0].strip().split(",") != list(LEVEL_COLUMNS):
        raise foreign(path, f"its header starts {lines[0][:60]!r}" if lines else "it is empty")
    try:
        table = pd.read_csv(io.StringIO("".join(lines)), dtype="float64")
    except (ValueError, pd.errors.ParserError) as err:
        raise unreadable(path, str(err).splitlines()[0]) from None
    return table.astype({"step": "int64", "level": "int64"})


def levels_before(run_dir: Path, first_step: int, levels: int) -> tuple[list[list[float]], str | None]:
    """For a resume at first_step: levels.csv's rows of steps 0..first_step-1 and, when they are not all
    there (`levels` rows a step), why not."""
    path = Path(run_dir) / LEVELS_FILE
    if not path.exists():
        return [], (f"{path} is missing" if first_step > 0 else None)
    try:
        table = load_levels(path)
    except RunFileError as err:
        return [], err.reason
    kept = table[table["step"] < first_step]
    counts = kept.groupby("step").size()
    if len(counts) != first_step or (counts != levels).any():
        return [], f"{path} does not hold {levels} rows for each of steps 0..{first_step - 1}"
    return kept.to_numpy(dtype=float).tolist(), None
