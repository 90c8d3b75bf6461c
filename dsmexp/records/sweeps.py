"""A sweep directory as one table, runs.csv, rebuilt from the files on disk.

    python -m dsmexp.sweeps SWEEP_DIR      # e.g. after a cluster sweep whose launcher was interrupted

One row per job: its overrides and key settings, status (completed, diverged, failed, incomplete,
missing, skipped, skipped-busy, unreadable), steps done, wall time, final metrics, run directory and
the rest of its flattened config; the same table as `dsmexp.load_runs(SWEEP_DIR)` (tables.py, which
writes runs.csv).
Jobs listed in the sweep's jobs.json that never wrote a directory are `missing`; a directory without
summary.json is `incomplete`; a run whose files cannot be read (a score_field.npz holding a pickled object
included; it is not unpickled), or whose metrics.csv does not hold the steps its summary.json reports, is
`unreadable` with the reason in `error`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, identity, metrics_file

SETTINGS = ("dataset", "loss", "sigma", "seed", "noise_samples", "steps")
log = logging.getLogger(__name__)
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

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    def field(self) -> dict[str, np.ndarray] | None:
        """score_field.npz (None when the run has none); RunFileError when it cannot be read."""
        return artifacts.read_score_field(self.run_dir / artifacts.FIELD_FILE)


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every job of a sweep whose files can be read, sorted by loss, sigma, seed (see unreadable_runs)."""
    return scan_runs(sweep_dir)[0]


def unreadable_runs(sweep_dir: Path) -> list[tuple[Path, str]]:
    """Every job directory of a sweep that load_runs leaves out, with the reason."""
    return scan_runs(sweep_dir)[1]


def scan_runs(sweep_dir: Path) -> tuple[list[Run], list[tuple[Path, str]]]:
    """(the runs that can be read, sorted by loss, sigma, seed; (run_dir, why) for the others)."""
    runs, problems = [], []
    for run_dir in find_run_dirs(sweep_dir):
        try:
            runs.append(read_run(run_dir))
        except RunFileError as err:
            log.warning("run left out, unreadable: %s", err.reason)
            problems.append((run_dir, err.reason))
    return sorted(runs, key=lambda r: (r.loss, r.sigma, r.seed)), problems


def read_run(run_dir: Path) -> Run:
    """One job directory as a Run; RunFileError saying why when it cannot be read or is not whole."""
    summary = artifacts.read_summary(run_dir) or {}
    config = summary.get("config") or _hydra_config(run_dir)
    metrics = read_checked_metrics(run_dir, summary)
    artifacts.read_score_field(run_dir / artifacts.FIELD_FILE)  # the figures read it later
    return Run(run_dir, config["loss"]["name"], float(config["sigma"]), summary.get("status", "incomplete"),
               config, metrics, summary)


def read_checked_metrics(run_dir: Path, summary: dict | None) -> dict[str, np.ndarray]:
    """metrics.csv of a run, checked against its summary: a finished run holds exactly its steps."""
    path = run_dir / metrics_file.METRICS_FILE
    status = (summary or {}).get("status", "incomplete")
    if not path.exists():
        raise RunFileError(f"{path}: missing (status {status})")
    metrics = metrics_file.read_metrics(path)
    if status in artifacts.FINISHED:
        steps, done = metrics["step"].tolist(), summary["steps_done"]
        if steps != list(range(done)):
            raise RunFileError(f"{path}: holds {len(steps)} rows, not steps 0..{done - 1} as summary.json "
                               f"reports for a {status} run")
    return metrics


def _hydra_config(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "config.yaml"
    try:
        config = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # noqa: BLE001 - yaml and OmegaConf raise several types
        raise RunFileError(f"{path}: cannot be read ({type(err).__name__})") from None
    problem = artifacts.config_problem(config)
    if problem:
        raise RunFileError(f"{path}: cannot be read ({problem})")
    return config


def find_run_dirs(sweep_dir: Path) -> list[Path]:
    """Every directory under sweep_dir that Hydra ran a job in (it holds .hydra/config.yaml)."""
    return sorted(p.parent.parent for p in Path(sweep_dir).rglob(".hydra/config.yaml"))


def run_record(run_dir: Path, sweep_dir: Path, plan: dict[str, dict] | None = None) -> dict:
    """One row of runs.csv for a job directory."""
    rel = str(run_dir.relative_to(sweep_dir))
    row = {"run_dir": rel, "overrides": " ".join(_overrides(run_dir))}
    try:
        summary = artifacts.read_summary(run_dir)
        # the settings the metrics belong to: summary.json's copy, else what Hydra recorded
        cfg = OmegaConf.create(summary["config"] if summary else _hydra_config(run_dir))
    except RunFileError as err:
        log.warning("run listed as unreadable: %s", err.reason)
        return row | {"status": "unreadable", "error": err.reason}
    row |= {"dataset": cfg.dataset.name, "loss": cfg.loss.name} | {k: cfg[k] for k in SETTINGS[2:]}
    planned = (plan or {}).get(rel, {})
    if summary is None:
        if planned.get("status") in ("skipped-busy", "unreadable"):
            return row | {"status": planned["status"], "error": planned.get("skipped")}
        return _with_config(row | {"status": "incomplete"}, identity.run_config(run_dir))
    row |= {k: summary.get(k) for k in ("status", "steps_done", "diverged_step", "wall_time_s", "error",
                                        *REPRODUCE)}
    final = summary.get("final") or {}
    row |= {f"final_{k}": v for k, v in final.items() if k not in ("step", "time_s")}
    try:
        if summary["status"] in artifacts.FINISHED:
            read_checked_metrics(run_dir, summary)
        artifacts.read_score_field(run_dir / artifacts.FIELD_FILE)
    except RunFileError as err:
        log.warning("run listed as unreadable: %s", err.reason)
        row |= {"status": "unreadable", "error": err.reason}
    return _with_config(row, OmegaConf.to_container(cfg))


def _with_config(row: dict, config: dict) -> dict:
    """The row, then the flattened config's other columns (what summary.json recorded wins)."""
    return row | {k: v for k, v in identity.config_columns(config).items() if k not in row}


def _overrides(run_dir: Path) -> list[str]:
    try:
        return list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    except Exception:  # noqa: BLE001 - a missing or broken file leaves the column empty
        return []


def _plan(sweep_dir: Path) -> list[dict]:
    plan_file = Path(sweep_dir) / "jobs.json"
    try:
        return json.loads(plan_file.read_text()) if plan_file.exists() else []
    except (OSError, ValueError):
        return []


def planned_records(sweep_dir: Path, seen: set[str]) -> list[dict]:
    """Rows for jobs in jobs.json that were skipped or never wrote a directory."""
    rows = []
    for job in _plan(sweep_dir):
        if job.get("subdir") in seen:
            continue
        status = job.get("status") or ("skipped" if "skipped" in job else "missing")
        rows.append({"run_dir": job.get("subdir") or "", "overrides": " ".join(job["overrides"]),
                     "status": status, "error": job.get("skipped")})
    return rows


def records(sweep_dir: Path) -> list[dict]:
    """The rows of runs.csv as dicts: one per job directory, then jobs.json's jobs that have none
    (tables.load_runs orders and types them)."""
    sweep_dir = Path(sweep_dir)
    plan = {job["subdir"]: job for job in _plan(sweep_dir) if job.get("subdir")}
    rows = [run_record(d, sweep_dir, plan) for d in find_run_dirs(sweep_dir)]
    return rows + planned_records(sweep_dir, {r["run_dir"] for r in rows})
