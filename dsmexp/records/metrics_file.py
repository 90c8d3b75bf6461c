"""metrics.csv, one row per step (README, What a run leaves behind): its one reader and its one writer.

- The writer (MetricsWriter) appends whole rows and fsyncs them before each checkpoint that counts
  them; a resume rewrites the file atomically with the rows its checkpoint accounts for (rows_before).
- The reader (_parse) knows a header dsmexp wrote now or before (older versions logged a subset of
  today's columns) and leaves out a last line without its newline (a row cut short by a stop);
  load_metrics, the pandas view, refuses any other malformed row, naming the file and the line
  (RunFileError); read_metrics is the same as a dict of arrays.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dsmexp.core.evaluation import EVAL_METRICS
from dsmexp.core.objectives.terms import METRICS
from dsmexp.errors import RunFileError
from dsmexp.safe_io import foreign, open_append, replace_atomically, unreadable, write_failed

METRICS_FILE = "metrics.csv"
COLUMNS = ("step", *METRICS, *EVAL_METRICS, "time_s")

# one line per column (README, What a run computes), shown beside each chart by TensorBoard
DESCRIPTIONS = {
    "step": "the optimisation step",
    "loss": "the trained objective (loss_ism, loss_dsm, loss_dsm_s, loss_est or loss_vr)",
    "norm": "mean 0.5 |s(z)|^2, shared by ISM and DSM-S (Eq. 8, 9)",
    "fit_ism": "mean div s(z), the exact trace of ds/dz: the ISM fitting term (Eq. 8)",
    "fit_dsm": "mean <s(z), eps>/sigma: the DSM fitting term (Eq. 9), fit_ism in expectation (Prop. 2)",
    "const_dsm": "mean |eps|^2 / (2 sigma^2), the constant DSM-S drops (Eq. 7 vs 9)",
    "loss_ism": "ISM, Eq. 8: norm + fit_ism",
    "loss_dsm_s": "DSM-S, Eq. 9: norm + fit_dsm",
    "loss_dsm": "DSM, Eq. 7: mean 0.5 |s(z) + eps/sigma|^2",
    "fit_ism_se": "standard error of fit_ism over the M*N points",
    "fit_dsm_se": "standard error of fit_dsm over the M*N points",
    "grad_norm_ism": "norm of the ISM parameter gradient",
    "grad_norm_dsm": "norm of the DSM parameter gradient (DSM and DSM-S have the same one)",
    "grad_cos": "cosine of the ISM and DSM parameter gradients",
    "norm_est": "the estimator's norm term (ssm: 0.5 (v^T s)^2; ssm_vr: 0.5 |s|^2; fd_ssm: its central form)",
    "fit_est": "the estimator's fitting term, v^T J v or its finite difference: fit_ism in expectation",
    "fit_est_se": "standard error of fit_est over the M*N*K values",
    "loss_est": "norm_est + fit_est: the trained loss of ssm, ssm_vr and fd_ssm runs",
    "grad_norm_est": "norm of the estimator's parameter gradient",
    "grad_cos_est": "cosine of the estimator's gradient with the exact ISM gradient",
    "fit_vr": "a denoising variant's fitting term (dsm_cv <s(z) - s(x), eps>/sigma; tsm -<s, grad log p(x)>)",
    "fit_vr_se": "standard error of fit_vr over the M*N points",
    "loss_vr": "norm + fit_vr: the trained loss of dsm_cv, tsm and tsm_mix runs",
    "grad_norm_vr": "norm of the denoising variant's parameter gradient",
    "grad_var": "the trained gradient's per-point variance over the noise (trace of its covariance)",
    "grad_var_se": "standard error of grad_var over the step's groups of noise rows",
    "grad_var_ism": "the same for the exact ISM gradient on the same z",
    "grad_var_ism_se": "standard error of grad_var_ism",
    "esm": "0.5 mean |s(z) - grad log q_sigma(z)|^2 on held-out z ~ q_sigma: the true SM loss (Eq. 2)",
    "esm_data": "0.5 mean |s(x) - grad log p_data(x)|^2 on held-out clean x: distance to the data score",
    "esm_emp": "esm against the empirical mixture (1/N) sum N(x_i, sigma^2 I) of the training set",
    "esm_rel": "esm over mean |grad log q_sigma|^2 on the same points (s = 0 scores 0.5)",
    "esm_data_rel": "esm_data over mean |grad log p_data|^2 on the same points (s = 0 scores 0.5)",
    "curl": "2-D: mean |d s_2/d z_1 - d s_1/d z_2| on the held-out z (zero for a gradient field)",
    "loglik": "2-D energy models: mean log p_model(z), exp(-E) normalised on a grid",
    "kl": "2-D energy models: KL(q_sigma || p_model) on the held-out z, against the exact density",
    "time_s": "seconds since the run started",
}


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


def whole_lines(path: Path) -> list[str]:
    """A table's lines, without a last line that lacks its newline (a row cut short by a stop: training
    appends whole lines); RunFileError naming the file when it cannot be read."""
    try:
        with Path(path).open(newline="") as f:
            lines = f.read().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as err:
        raise unreadable(path, str(err)) from None
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    return lines


def _parse(path: Path) -> tuple[list[str], list[list[float]], list[tuple[int, str]]]:
    """metrics.csv as (header, rows as numbers, (line number, what is wrong) of the rows that do not parse).

    A last line without its newline is a row cut short by a stop: it is left out and not reported.
    """
    rows = list(csv.reader(io.StringIO("".join(whole_lines(path)))))
    if not rows:
        raise unreadable(path, "empty, no header")
    header = rows[0]
    if not is_metrics_header(header):
        raise foreign(path, f"its header starts {','.join(header[:3])[:60]!r}")
    parsed, bad = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            bad.append((number, f"line {number} does not have {len(header)} fields"))
            continue
        try:
            values = [float(v) for v in row]
        except ValueError as err:
            bad.append((number, f"line {number}: a value is not a number ({err})"))
            continue
        if not (values[0].is_integer() and values[0] >= 0):
            bad.append((number, f"line {number}: step {row[0]!r} is not a step number"))
            continue
        parsed.append(values)
    return header, parsed, bad


def load_metrics(run: str | Path) -> pd.DataFrame:
    """A run's metrics.csv (pass the run directory or the file): step as int64, every other column
    float64, NaN where a metric was not computed at that step (and in the columns an older version of
    dsmexp did not log: every table has today's COLUMNS). A last line without its newline is a
    row cut short by a stop (training appends whole lines) and is left out. A file dsmexp did not write,
    or any other row with the wrong number of fields or a value that is not a number, raises
    RunFileError naming the file and the line."""
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_FILE
    header, rows, bad = _parse(path)
    if bad:
        raise unreadable(path, bad[0][1])
    table = pd.DataFrame(np.array(rows, dtype=np.float64).reshape(len(rows), len(header)), columns=header)
    return table.reindex(columns=list(COLUMNS)).astype({"step": "int64"})


def check_metrics_header(path: Path) -> None:
    """Raise RunFileError unless path is a metrics.csv dsmexp wrote (only its first line is read)."""
    try:
        with Path(path).open(newline="") as f:
            header = next(csv.reader([f.readline()]), [])
    except (OSError, UnicodeDecodeError) as err:
        raise unreadable(path, str(err)) from None
    if not is_metrics_header(header):
        raise foreign(path, f"its header starts {','.join(header[:3])[:60]!r}")


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as a dict of column name -> float array (step as int), the arrays of load_metrics."""
    table = load_metrics(path)
    return {name: table[name].to_numpy() for name in table.columns}


def rows_before(path: Path, first_step: int) -> tuple[list[list[float]], str | None]:
    """For a resume at first_step: the logged rows of steps 0..first_step-1 and, when they are not all
    there exactly once, why not. Rows with the wrong number of fields are dropped."""
    if not Path(path).exists():
        return [], (f"{path} is missing" if first_step > 0 else None)
    header, rows, _ = _parse(path)
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
    """Appends rows to metrics.csv (or another table of numbers: `columns`, the first `ints` of them
    integers) as training goes. It starts from `kept` (the rows a resume keeps, from rows_before),
    rewriting the file atomically; sync() makes the rows so far durable."""

    def __init__(self, path: Path, kept: list[list[float]] | None = None,
                 columns: Sequence[str] = COLUMNS, ints: int = 1) -> None:
        self.path, self.ints = path, ints

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerow(columns)
                self._write_rows(f, kept or [])
        replace_atomically(path, write)
        self._file = open_append(path, newline="")

    def _write_rows(self, f: Any, rows: Iterable[Sequence[float]]) -> None:
        writer = csv.writer(f)
        k = self.ints
        for row in rows:
            writer.writerow([*(int(v) for v in row[:k]), *(repr(float(v)) for v in row[k:])])

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
