"""A sweep directory as one table, runs.csv, rebuilt from the files on disk.

    python -m dsmexp.sweeps SWEEP_DIR      # e.g. after a cluster sweep whose launcher was interrupted

One row per job: its overrides and key settings, status (completed, diverged, failed, incomplete,
missing, skipped), steps done, wall time, final metrics, run directory and the rest of its flattened
config; the same table as `dsmexp.load_runs(SWEEP_DIR)` (dsmexp/tables.py). Jobs listed in the sweep's
jobs.json that never wrote a directory are `missing`; a directory without summary.json is `incomplete`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from dsmexp import artifacts, tables

SETTINGS = ("dataset", "loss", "sigma", "seed", "noise_samples", "steps")
RUNS_FILE = "runs.csv"
# beyond the settings, what a bitwise rerun needs: the same thread count, chunk size and source commit
REPRODUCE = ("threads", "chunk_size", "commit")


@dataclass
class Run:
    """One finished (or stopped) job of a sweep, as saved on disk."""

    run_dir: Path
    loss: str
    sigma: float
    status: str
    config: dict
    metrics: dict[str, np.ndarray]
    summary: dict

    def field(self) -> dict[str, np.ndarray] | None:
        path = self.run_dir / artifacts.FIELD_FILE
        return dict(np.load(path)) if path.exists() else None


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every job of a sweep that logged metrics, sorted by loss then sigma."""
    runs = []
    for run_dir in find_run_dirs(sweep_dir):
        summary = artifacts.read_summary(run_dir) or {}
        metrics_file = run_dir / artifacts.METRICS_FILE
        if not metrics_file.exists():
            continue
        config = summary.get("config") or OmegaConf.to_container(
            OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
        runs.append(Run(run_dir, config["loss"]["name"], float(config["sigma"]),
                        summary.get("status", "incomplete"), config, artifacts.read_metrics(metrics_file),
                        summary))
    return sorted(runs, key=lambda r: (r.loss, r.sigma))


def find_run_dirs(sweep_dir: Path) -> list[Path]:
    """Every directory under sweep_dir that Hydra ran a job in (it holds .hydra/config.yaml)."""
    return sorted(p.parent.parent for p in Path(sweep_dir).rglob(".hydra/config.yaml"))


def run_record(run_dir: Path, sweep_dir: Path) -> dict:
    """One row of runs.csv for a job directory."""
    summary = artifacts.read_summary(run_dir)
    # the settings the metrics belong to: summary.json's copy, else what Hydra recorded
    cfg = OmegaConf.create(summary["config"]) if summary else OmegaConf.load(run_dir / ".hydra/config.yaml")
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    row = {"run_dir": str(run_dir.relative_to(sweep_dir)), "overrides": " ".join(overrides),
           "dataset": cfg.dataset.name, "loss": cfg.loss.name}
    row |= {k: cfg[k] for k in SETTINGS[2:]}
    if summary is None:
        return _with_config(row | {"status": "incomplete"}, tables.run_config(run_dir))
    row |= {k: summary.get(k) for k in ("status", "steps_done", "diverged_step", "wall_time_s", "error",
                                        *REPRODUCE)}
    final = summary.get("final") or {}
    row |= {f"final_{k}": v for k, v in final.items() if k not in ("step", "time_s")}
    return _with_config(row, OmegaConf.to_container(cfg))


def _with_config(row: dict, config: dict) -> dict:
    """The row, then the flattened config's other columns (what summary.json recorded wins)."""
    return row | {k: v for k, v in tables.config_columns(config).items() if k not in row}


def planned_records(sweep_dir: Path, seen: set[str]) -> list[dict]:
    """Rows for jobs in jobs.json that were skipped or never wrote a directory."""
    plan_file = Path(sweep_dir) / "jobs.json"
    if not plan_file.exists():
        return []
    rows = []
    for job in json.loads(plan_file.read_text()):
        if job.get("subdir") in seen:
            continue
        status = "skipped" if "skipped" in job else "missing"
        rows.append({"run_dir": job.get("subdir") or "", "overrides": " ".join(job["overrides"]),
                     "status": status, "error": job.get("skipped")})
    return rows


def records(sweep_dir: Path) -> list[dict]:
    """The rows of runs.csv as dicts: one per job directory, then jobs.json's jobs that have none
    (tables.load_runs orders and types them)."""
    sweep_dir = Path(sweep_dir)
    rows = [run_record(d, sweep_dir) for d in find_run_dirs(sweep_dir)]
    return rows + planned_records(sweep_dir, {r["run_dir"] for r in rows})


def write_runs_table(sweep_dir: Path) -> Path:
    """Write (or rewrite) SWEEP_DIR/runs.csv from the job directories and jobs.json; return its path."""
    path = Path(sweep_dir) / RUNS_FILE
    tables.load_runs(sweep_dir).to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dsmexp.sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a directory made by `python -m dsmexp -m ...`")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    path = write_runs_table(args.sweep_dir)
    print(f"{path}: {len(pd.read_csv(path))} jobs")


if __name__ == "__main__":
    main()
