"""pandas views of what runs leave on disk (README, What a run leaves behind), for notebooks and for the
figures, claims, report and runs.csv code alike:

    import dsmexp
    dsmexp.load_metrics("outputs/runs/loss=ism,sigma=0")   # one run's metrics.csv, one row per step
    dsmexp.load_runs("outputs/sweeps/figures-quick")       # one row per job: the content of runs.csv
    dsmexp.load_sweep_metrics("outputs/sweeps/figures-quick")  # every step of every job, long form

A job's config is flattened to dotted columns (dataset.n_samples, model.hidden, optimizer.lr, ...);
the option chosen for a config group is the column named for the group (dataset, loss, model,
optimizer), as on the command line. Lists become their text ("[16, 32]"), so every column can be
grouped on and runs.csv reads back to the same table.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import pandas as pd

from dsmexp import safe_io
from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, identity, metrics_file, sweeps

log = logging.getLogger(__name__)
RUNS_FILE = "runs.csv"



def typed_frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """Records as a DataFrame, a missing value as NaN (as pd.read_csv gives it), integer columns kept
    integers where some rows have no value (pandas' nullable Int64), so runs.csv writes 30, not 30.0, and
    the table reads back from runs.csv the same."""
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for name in table.columns:
        kind = pd.api.types.infer_dtype(table[name], skipna=True)
        if kind == "integer":
            table[name] = table[name].astype("Int64")
        elif kind in ("floating", "mixed-integer-float", "empty"):
            table[name] = table[name].astype("float64")
        elif kind == "boolean" and table[name].notna().all():
            table[name] = table[name].astype(bool)  # with a missing value: True/False/NaN, as read_csv has it
        else:
            table[name] = table[name].where(table[name].notna(), math.nan)
    return table


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job of a sweep, as in runs.csv: run_dir, overrides, the main settings, status,
    progress, reproducibility keys, final_<metric> columns, then the rest of the flattened config.
    Jobs that were skipped or never started are rows too (status skipped / missing)."""
    rows = sweeps.records(Path(sweep_dir))
    leading = ["run_dir", "overrides", *sweeps.SETTINGS, "status", "steps_done", "diverged_step",
               "wall_time_s", "error", *sweeps.REPRODUCE]
    finals = sorted({k for r in rows for k in r if k.startswith("final_")}, key=_final_order)
    rest = list(dict.fromkeys(k for r in rows for k in r if k not in leading and k not in finals))
    return typed_frame(rows, leading + finals + rest)


def load_sweep_metrics(sweep_dir: str | Path) -> pd.DataFrame:
    """Every logged step of every job under sweep_dir in long form: run_dir, status and the flattened
    config columns of the job, then its metrics.csv columns. A job whose metrics.csv, summary.json or
    saved config cannot be read is left out with a warning naming the file. Ready for
    `df.groupby(["loss", "sigma"])` or seaborn's `hue="loss"`: "loss" is the trained objective's name
    here, so metrics.csv's `loss` column (its value) is `loss_value` (any clash gets `_value`)."""
    sweep_dir = Path(sweep_dir)
    parts = []
    for run_dir in sweeps.find_run_dirs(sweep_dir):
        if not (run_dir / metrics_file.METRICS_FILE).exists():
            continue
        try:
            summary = artifacts.read_summary(run_dir) or {}
            config = identity.run_config(run_dir)
            metrics = metrics_file.load_metrics(run_dir)
        except RunFileError as err:
            log.warning("left out of the long table: %s", err.reason)
            continue
        ids = {"run_dir": str(run_dir.relative_to(sweep_dir)), "status": summary.get("status", "incomplete")}
        ids |= identity.config_columns(config)
        metrics = metrics.rename(columns={c: f"{c}_value" for c in metrics.columns if c in ids})
        keys = typed_frame([ids] * len(metrics))
        parts.append(pd.concat([keys, metrics.reset_index(drop=True)], axis=1))
    if not parts:
        return pd.DataFrame(columns=["run_dir", "status", "loss", "sigma", "step", "loss_value"])
    return pd.concat(parts, ignore_index=True)


def _final_order(key: str) -> int:
    name = key.removeprefix("final_")
    return metrics_file.COLUMNS.index(name) if name in metrics_file.COLUMNS else len(metrics_file.COLUMNS)


def write_runs_table(sweep_dir: Path) -> Path:
    """Write (or rewrite) SWEEP_DIR/runs.csv from the job directories and jobs.json; return its path."""
    path = Path(sweep_dir) / RUNS_FILE
    safe_io.replace_text(path, load_runs(sweep_dir).to_csv(index=False))
    return path


def main(argv: list[str] | None = None) -> None:
    what = "Rebuild a sweep directory's runs.csv from the files on disk."
    parser = argparse.ArgumentParser(prog="python -m dsmexp.sweeps", description=what)
    parser.add_argument("sweep_dir", type=Path, help="a directory made by `python -m dsmexp -m ...`")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    path = write_runs_table(args.sweep_dir)
    print(f"{path}: {len(pd.read_csv(path))} jobs")


if __name__ == "__main__":
    main()
