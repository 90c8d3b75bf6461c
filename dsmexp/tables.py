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

import io
import json
import logging
import math
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from dsmexp import artifacts, safe_io

log = logging.getLogger(__name__)

GROUPS = ("dataset", "loss", "model", "optimizer")


def load_metrics(run: str | Path) -> pd.DataFrame:
    """A run's metrics.csv (pass the run directory or the file): step as int64, every other column
    float64, NaN where a metric was not computed at that step. A last line without its newline is a
    row cut short by a stop (training appends whole lines) and is left out. A file dsmexp did not write,
    or any other row with the wrong number of fields or a value that is not a number, raises
    artifacts.RunFileError naming the file and the line."""
    path = Path(run)
    if path.is_dir():
        path = path / artifacts.METRICS_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise safe_io.unreadable(path, str(err)) from None
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    if not text.strip():
        raise safe_io.unreadable(path, "empty, no header")
    header = text.split("\n", 1)[0].split(",")
    if not artifacts.is_metrics_header(header):
        raise safe_io.foreign(path, f"its header starts {','.join(header[:3])[:60]!r}")
    long_rows: list[list[str]] = []
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, engine="python",
                        on_bad_lines=lambda fields: long_rows.append(fields) and None)
    short = table.isna().any(axis=1)  # fewer fields than the header
    if long_rows or short.any():
        where = f"line {int(short.to_numpy().nonzero()[0][0]) + 2}" if short.any() else "a row"
        raise safe_io.unreadable(path, f"{where} does not have {len(header)} fields")
    try:
        table = table.astype("float64")
    except ValueError as err:
        raise safe_io.unreadable(path, f"a value is not a number ({err})") from None
    return table.astype({"step": "int64"})


def run_config(run_dir: Path) -> dict:
    """The settings a run's numbers belong to: summary.json's copy, else what Hydra recorded at launch
    (minus the keys that change speed but not numbers, as in summary.json); RunFileError naming the file
    when neither can be read."""
    from dsmexp.training import NON_RESULT_KEYS

    summary = artifacts.read_summary(run_dir)
    if summary and summary.get("config"):
        return summary["config"]
    path = Path(run_dir) / ".hydra" / "config.yaml"
    try:
        config = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # noqa: BLE001 - yaml and OmegaConf raise several types
        raise safe_io.unreadable(path, type(err).__name__) from None
    if not isinstance(config, dict):
        raise safe_io.unreadable(path, "not a mapping of settings")
    return {k: v for k, v in config.items() if k not in NON_RESULT_KEYS}


def config_columns(config: dict) -> dict:
    """A nested run config as flat columns: {"optimizer": {"name": "adam", "lr": 0.1}} gives
    {"optimizer": "adam", "optimizer.lr": 0.1}; lists become their JSON text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            for sub, inner in config_columns(value).items():
                flat[key if key in GROUPS and sub == "name" else f"{key}.{sub}"] = inner
        else:
            flat[key] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat


def typed_frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """Records as a DataFrame, a missing value as NaN (as pd.read_csv gives it), integer columns kept
    integers where some rows have no value (pandas' nullable Int64), so runs.csv writes 30, not 30.0."""
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for name in table.columns:
        kind = pd.api.types.infer_dtype(table[name], skipna=True)
        if kind == "integer":
            table[name] = table[name].astype("Int64")
        elif kind in ("floating", "mixed-integer-float", "empty"):
            table[name] = table[name].astype("float64")
        elif kind == "boolean":
            table[name] = table[name].astype("boolean")
        else:
            table[name] = table[name].where(table[name].notna(), math.nan)
    return table


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job of a sweep, as in runs.csv: run_dir, overrides, the main settings, status,
    progress, reproducibility keys, final_<metric> columns, then the rest of the flattened config.
    Jobs that were skipped or never started are rows too (status skipped / missing)."""
    from dsmexp import sweeps

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
    from dsmexp import sweeps

    sweep_dir = Path(sweep_dir)
    parts = []
    for run_dir in sweeps.find_run_dirs(sweep_dir):
        if not (run_dir / artifacts.METRICS_FILE).exists():
            continue
        try:
            summary = artifacts.read_summary(run_dir) or {}
            config = run_config(run_dir)
            metrics = load_metrics(run_dir)
        except artifacts.RunFileError as err:
            log.warning("left out of the long table: %s", err.reason)
            continue
        ids = {"run_dir": str(run_dir.relative_to(sweep_dir)), "status": summary.get("status", "incomplete")}
        ids |= config_columns(config)
        metrics = metrics.rename(columns={c: f"{c}_value" for c in metrics.columns if c in ids})
        keys = typed_frame([ids] * len(metrics))
        parts.append(pd.concat([keys, metrics.reset_index(drop=True)], axis=1))
    if not parts:
        return pd.DataFrame(columns=["run_dir", "status", "loss", "sigma", "step", "loss_value"])
    return pd.concat(parts, ignore_index=True)


def _final_order(key: str) -> int:
    name = key.removeprefix("final_")
    return artifacts.COLUMNS.index(name) if name in artifacts.COLUMNS else len(artifacts.COLUMNS)
