"""The Hydra application behind `python -m dsmexp` and the `dsmexp` console script.

Training (dsmexp.train, and with it torch) is imported only by a command that trains or checks a run:
`--help`, `--cfg` and each TAB of shell completion compose configs only, and the config layer loads
without torch, so they answer in about a second."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig

from dsmexp.config import CONF_DIR, compose, register_configs, validate
from dsmexp.errors import DsmexpError
from dsmexp.train.interrupt import Interrupted

register_configs()


def job_threads(cfg: DictConfig) -> int | None:
    """torch (and fused-kernel OpenMP) threads for this job: cfg.threads, else the CPUs a Slurm job was
    given (SLURM_CPUS_PER_TASK); under the joblib launcher those, or the CPUs this process may run on (its
    affinity mask), are split over n_jobs, so parallel jobs never ask for more threads than there are
    CPUs. Otherwise None: torch's default (OMP_NUM_THREADS, else the cores)."""
    if cfg.threads is not None:
        return cfg.threads
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    cores = int(slurm_cpus) if slurm_cpus.isdigit() else None
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if n_jobs is None:
        return cores
    cores = cores or available_cpus()
    return max(1, cores // (cores if n_jobs < 0 else n_jobs))


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> str:
    from dsmexp.train import trainer

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return trainer.run(cfg, run_dir, threads=job_threads(cfg))
    except DsmexpError as err:
        if HydraConfig.get().mode != RunMode.RUN:
            raise  # a sweep job: the sweeper records it and runs the others
        # a single run found something check_single_run could not see yet (the directory taken since,
        # the disk full): one line, as for a bad setting
        sys.stderr.write(f"dsmexp: error: {err}\n")
        sys.exit(1)


def check_single_run(argv: list[str]) -> None:
    """Check a plain single run before Hydra creates or writes anything in its output directory.

    Exits 1 with one line on a bad setting, a directory holding another run or files dsmexp cannot use,
    a directory another process is using, or one that cannot be written; exits 0 with one line when
    the run already finished (so a finished run in a read-only directory is still skipped).

    `--cfg` prints a config only when it passes the config checks (a config a run refuses is one line),
    and a config directory of one's own (`-cd DIR`, `-cn NAME`) is checked the same way. Sweeps are
    checked job by job by the dsmexp sweeper; help, shell completion, `-cp`, composition errors and
    reruns are left to Hydra.
    """
    args = get_args_parser().parse_args(argv)
    if (args.multirun or args.help or args.hydra_help or args.info or args.shell_completion
            or args.config_path or args.experimental_rerun):
        return
    extra = [f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]"] if args.config_dir else []
    try:
        cfg = compose([*args.overrides, *extra], hydra_config=True, config_name=args.config_name or "config")
        run_dir = Path(cfg.hydra.run.dir)
    except MissingConfigException as err:  # `loss=foo`: one line naming the group's options
        if err.missing_cfg_file and err.options:
            group, _, option = err.missing_cfg_file.rpartition("/")
            sys.stderr.write(f"dsmexp: error: {group}={option}: must be one of {', '.join(err.options)}\n")
            sys.exit(1)
        return
    except HydraException:
        return  # Hydra reports composition errors itself, before writing anything
    if args.cfg:
        try:
            validate(cfg)  # the values only: printing a config touches neither the machine nor the disk
        except DsmexpError as err:
            sys.stderr.write(f"dsmexp: error: {err}\n")
            sys.exit(1)
        return
    from dsmexp.train.preflight import preflight

    try:
        finished = preflight(cfg, run_dir, writable=True, hand_over=True)  # run() does not check again
    except DsmexpError as err:
        sys.stderr.write(f"dsmexp: error: {err}\n")
        sys.exit(1)
    if finished is not None:  # nothing to write, not even Hydra's files (the directory may be read-only)
        sys.stderr.write(f"dsmexp: {run_dir}: already {finished['status']} after {finished['steps_done']} "
                         "steps; skipping (overwrite=true trains it again)\n")
        sys.exit(0)


def _reads_configs_only(argv: list[str]) -> bool:
    """True for help and shell completion, which train nothing."""
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return False  # a malformed command line: Hydra says what is wrong
    return bool(args.help or args.hydra_help or args.shell_completion)


def main() -> None:
    """Train one run (or a sweep with -m) in Hydra's output directory.

    Ctrl-C prints one line and exits 130: a run stops after the step in progress, with its metrics
    rows and a checkpoint written, so the same command resumes it."""
    if not _reads_configs_only(sys.argv[1:]):
        from dsmexp.train import trainer

        trainer.prepare_cpu()  # before torch starts its worker threads, so they inherit it
    try:
        check_single_run(sys.argv[1:])
        _app()
    except KeyboardInterrupt as stop:
        where = f" at step {stop.steps_done}" if isinstance(stop, Interrupted) else ""
        sys.stderr.write(f"dsmexp: interrupted{where}; the same command resumes\n")
        sys.exit(130)
