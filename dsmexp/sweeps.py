"""A sweep directory as one table, runs.csv, rebuilt from the files on disk.

    python -m dsmexp.sweeps SWEEP_DIR      # e.g. after a cluster sweep whose launcher was interrupted

One row per job: its overrides and key settings, status (completed, diverged, failed, incomplete,
missing, skipped), steps done, wall time, final metrics and run directory. Jobs listed in the sweep's
jobs.json that never wrote a directory are `missing`; a directory without summary.json is `incomplete`.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from dsmexp import artifacts

SETTINGS = ("dataset", "loss", "sigma", "seed", "noise_samples", "steps")
RUNS_FILE = "runs.csv"
# beyond the settings, what a bitwise rerun needs: the same thread count, chunk size, kernel and commit
REPRODUCE = ("threads", "chunk_size", "kernel", "commit")


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
        return row | {"status": "incomplete"}
    row |= {k: summary.get(k) for k in ("status", "steps_done", "diverged_step", "wall_time_s", "error",
                                        *REPRODUCE)}
    final = summary.get("final") or {}
    return row | {f"final_{k}": v for k, v in final.items() if k not in ("step", "time_s")}


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


def write_runs_table(sweep_dir: Path) -> Path:
    """Write (or rewrite) SWEEP_DIR/runs.csv from the job directories and jobs.json; return its path."""
    sweep_dir = Path(sweep_dir)
    rows = [run_record(d, sweep_dir) for d in find_run_dirs(sweep_dir)]
    rows += planned_records(sweep_dir, {r["run_dir"] for r in rows})
    columns = ["run_dir", "overrides", *SETTINGS, "status", "steps_done", "diverged_step",
               "wall_time_s", "error", *REPRODUCE]
    columns += sorted({k for r in rows for k in r if k.startswith("final_")},
                      key=lambda k: _final_order(k))
    path = sweep_dir / RUNS_FILE
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _final_order(key: str) -> int:
    name = key.removeprefix("final_")
    return artifacts.COLUMNS.index(name) if name in artifacts.COLUMNS else len(artifacts.COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dsmexp.sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a directory made by `python -m dsmexp -m ...`")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    path = write_runs_table(args.sweep_dir)
    with path.open() as f:
        count = sum(1 for _ in f) - 1
    print(f"{path}: {count} jobs")


if __name__ == "__main__":
    main()
