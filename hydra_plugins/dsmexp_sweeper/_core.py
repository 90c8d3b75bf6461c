"""The dsmexp sweeper's work (see dsmexp_sweeper.py), imported only when a dsmexp sweep starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict

from dsmexp.errors import ConfigError, DsmexpError, RunBusy, RunFileError
from dsmexp.records.runlock import LOCK_FILE, RunLock
from dsmexp.records.tables import RUNS_FILE, write_runs_table
from dsmexp.safe_io import refuse_symlink, replace_text, write_failed
from dsmexp.train.preflight import preflight

log = logging.getLogger(__name__)


class JobsFailed(DsmexpError):
    """Some jobs raised or could not be read; the others ran (reported by the plugin as SweepFailed)."""

# what a sweep writes in its directory; none may be a symbolic link
SWEEP_FILES = ("multirun.yaml", "jobs.json", RUNS_FILE, LOCK_FILE)


def sweep(sweeper: Any, arguments: list[str]) -> Any:
    """Check every job, record the plan, launch the runnable jobs, then tabulate the sweep."""
    sweep_dir = _fix_sweep_dir(sweeper)
    jobs = _expand(sweeper, arguments)
    runnable, planned = _check(sweeper, jobs)
    for name in SWEEP_FILES:
        refuse_symlink(sweep_dir / name)
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        replace_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(sweeper.config))
        _record_plan(sweep_dir / "jobs.json", planned)
    except OSError as err:
        raise write_failed(sweep_dir, err, "write into") from None
    returns: list[JobReturn] = []
    size = sweeper.max_batch_size or max(len(runnable), 1)
    for start in range(0, len(runnable), size):
        returns.extend(sweeper.launcher.launch(runnable[start:start + size], initial_job_idx=start))
    _finish(sweep_dir, returns, planned)
    return [returns]


def _fix_sweep_dir(sweeper: Any) -> Path:
    """The sweep directory, resolved once from the whole command and handed to every job as a hydra
    override (as `hydra.sweep.dir=...` typed by the user is): the default name comes from the command's
    settings (conf/config.yaml), which each job would otherwise resolve from its own."""
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)
    given = sweeper.config.hydra.overrides.hydra
    if not any(str(o).split("=", 1)[0].lstrip("+~") == "hydra.sweep.dir" for o in given):
        quoted = str(sweep_dir).replace("\\", "\\\\").replace("'", "\\'")
        with open_dict(sweeper.config):
            given.append(f"hydra.sweep.dir='{quoted}'")
    return sweep_dir


def _expand(sweeper: Any, arguments: list[str]) -> list[list[str]]:
    """The grid: one list of overrides per job (sweeper params first, then the command line)."""
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(sweeper._parse_config() + list(arguments))
    return [job for batch in sweeper.split_arguments(overrides, None) for job in batch]


def _check(sweeper: Any, jobs: list[list[str]]) -> tuple[list[list[str]], list[dict]]:
    """Validate every job; return the runnable ones and the planned grid for jobs.json."""
    loader = sweeper.hydra_context.config_loader
    runnable, planned = [], []
    for job in jobs:
        cfg = loader.load_sweep_config(sweeper.config, list(job))
        subdir = OmegaConf.select(cfg, "hydra.sweep.subdir", default=None)
        entry = {"overrides": list(job), "subdir": subdir}
        try:
            preflight(cfg, Path(cfg.hydra.sweep.dir) / subdir if subdir is not None else None, hand_over=True)
        except (RunBusy, RunFileError) as err:
            status = "skipped-busy" if isinstance(err, RunBusy) else "unreadable"
            log.warning("skipping job %s (%s): %s", " ".join(job), status, err)
            planned.append(entry | {"skipped": str(err), "status": status})
            continue
        except ConfigError as err:
            if not err.sweep_skippable:
                raise ConfigError(f"job {' '.join(job)}: {err}") from None
            log.warning("skipping job %s: %s", " ".join(job), err)
            planned.append(entry | {"skipped": str(err)})
            continue
        runnable.append(job)
        planned.append(entry)
    if not runnable and not any("status" in entry for entry in planned):
        raise ConfigError("no job of this sweep can run (see the warnings above)")
    return runnable, planned


def _finish(sweep_dir: Path, returns: list[JobReturn], planned: list[dict]) -> None:
    """Tabulate the sweep, then fail once if any job raised or could not be read.

    A job that found its directory locked when it started (another process took it after the
    check) is recorded as skipped-busy, not as a failure."""
    failed = [r for r in returns if r.status == JobStatus.FAILED]
    busy = [r for r in failed if isinstance(_error(r), RunBusy)]
    if busy:
        for r in busy:
            log.warning("skipped job %s (skipped-busy): %s", " ".join(r.overrides), _error_line(r))
        marks = {tuple(r.overrides): _error_line(r) for r in busy}
        for entry in planned:
            if tuple(entry["overrides"]) in marks:
                entry |= {"skipped": marks[tuple(entry["overrides"])], "status": "skipped-busy"}
        _record_plan(sweep_dir / "jobs.json", planned)
    table = write_runs_table(sweep_dir)
    log.info("sweep table: %s", table)
    lines = [f"  {' '.join(r.overrides)}: {_error_line(r)}" for r in failed
             if not any(r is b for b in busy)]
    lines += [f"  {' '.join(e['overrides'])}: unreadable: {e['skipped']}" for e in planned
              if e.get("status") == "unreadable"]
    if lines:
        raise JobsFailed(f"{len(lines)} of {len(planned)} jobs failed or could not be read (details in "
                          "each run's summary.json and log, and in runs.csv):\n" + "\n".join(lines))


def _record_plan(path: Path, planned: list[dict]) -> None:
    """Add this sweep's jobs to the directory's plan (figure sweeps share a directory), under the sweep
    directory's lock so that two sweeps writing at once both keep their jobs."""
    def key(job: dict) -> str:
        return job.get("subdir") or json.dumps(job["overrides"])

    refuse_symlink(path)  # before reading it: a link's target is neither read nor written
    with RunLock(path.parent, wait=True, doing="is updating this sweep's jobs.json and runs.csv"):
        earlier = json.loads(path.read_text()) if path.exists() else []
        ours = {key(job) for job in planned}
        merged = [j for j in earlier if key(j) not in ours] + planned
        replace_text(path, json.dumps(merged, indent=2) + "\n")


def _error(job: JobReturn) -> BaseException | None:
    try:
        _ = job.return_value  # re-raises the job's exception
    except Exception as err:
        return err
    return None


def _error_line(job: JobReturn) -> str:
    err = _error(job)
    if err is None:
        return "failed"
    if isinstance(err, DsmexpError):
        return str(err).splitlines()[0]
    return f"{type(err).__name__}: {err}".splitlines()[0]
