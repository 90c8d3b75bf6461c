"""The dimension study: train every objective at every d (finished runs are skipped), time each
objective's step in one process (timing.json), then draw Figures 5-7 and report.md from the saved files.

    make dimension                      # PROFILE=quick: about 10-15 minutes on a 2-core CPU
    make dimension PROFILE=paper        # the paper's M = 500 and 5000 steps (a GPU makes it practical)
    dsmexp-dimension --profile smoke --dims 2,8 --launcher basic   # python -m dsmexp.studies.dimension.make
    dsmexp-dimension --pilot         # how DSM-S's sigma was chosen (conf/experiment/dimension_dsm_s.yaml)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra.errors import HydraException

from dsmexp.config import compose, validate
from dsmexp.errors import ConfigError
from dsmexp.studies.dimension.numbers import DIMS, STUDY_LOSSES
from dsmexp.studies.dimension.report import build_study_report, write_pilot_table
from dsmexp.studies.dimension.timing import (
    WIDTH_DIM,
    WIDTHS,
    measure,
    read_timing,
    same_points_variance,
    write_timing,
)

PROFILES = {"quick": "dimension_quick", "paper": "paper", "smoke": "smoke"}
TIMING_REPEATS = {"quick": (40, 5), "paper": (40, 5), "smoke": (2, 1)}  # measured steps, warm-up steps
PILOT_SIGMAS, PILOT_DIMS = (0.01, 0.02, 0.05, 0.1, 0.2), (2, 8, 32)
ISM_FAMILY = ("ism", "ssm_vr", "ssm", "fd_ssm")


def launcher_overrides(launcher: str) -> list[str]:
    """joblib runs CPU jobs side by side (one thread each); on a GPU, jobs run one after another."""
    if launcher == "auto":
        launcher = "basic" if torch.cuda.is_available() else "joblib"
    return [] if launcher == "basic" else [f"hydra/launcher={launcher}"]


def dsmexp(*overrides: str) -> bool:
    cmd = [sys.executable, "-m", "dsmexp", "-m", *overrides]
    print(f"== {' '.join(cmd[1:])}", flush=True)
    return subprocess.run(cmd).returncode == 0


def csv(values) -> str:
    return ",".join(str(v) for v in values)


def check_jobs(jobs: list[list[str]], common: list[str]) -> str | None:
    """The first job (the common overrides plus its own) that validate() refuses, as one line, or None.

    Every job the study would start is composed and checked as `python -m dsmexp` checks it, so a bad
    override stops the script before anything trains or is written; jobs the sweeper would skip (DSM
    at sigma = 0) are left to it."""
    for job in jobs:
        try:
            validate(compose([*common, *job], hydra_config=True))
        except ConfigError as err:
            if not err.sweep_skippable:
                return f"{' '.join(job)}: {err}"
        except HydraException as err:
            return f"{' '.join(job)}: " + " ".join(line.strip() for line in str(err).splitlines()
                                                   if line.strip())
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib", "submitit_local"))
    parser.add_argument("--dims", default=csv(DIMS), help=f"comma-separated d (default {csv(DIMS)})")
    parser.add_argument("--losses", default=csv(STUDY_LOSSES), help=f"subset of {csv(STUDY_LOSSES)}")
    parser.add_argument("--pilot", action="store_true",
                        help="train DSM-S at several sigma and report which is best (no figures)")
    parser.add_argument("--retime", action="store_true", help="measure timing.json again if it exists")
    parser.add_argument("--out", type=Path, help="default: outputs/figures/dimension-<profile>")
    parser.add_argument("overrides", nargs="*", help="extra dsmexp overrides for every run")
    args = parser.parse_args(argv)
    try:
        dims = [int(d) for d in args.dims.split(",")]
    except ValueError:
        parser.error(f"--dims={args.dims}: must be comma-separated integers >= 2")
    losses = args.losses.split(",")
    unknown = sorted(set(losses) - set(STUDY_LOSSES))
    if unknown:
        parser.error(f"--losses={args.losses}: {csv(unknown)} unknown; must be a subset of "
                     f"{csv(STUDY_LOSSES)}")
    if min(dims) < 2:
        parser.error(f"--dims={args.dims}: every d must be >= 2 (the half-moon lies in a 2-D plane of R^d)")
    profile = [f"+profile={PROFILES[args.profile]}", *launcher_overrides(args.launcher), *args.overrides]
    sweeps = Path("outputs") / "sweeps"
    sweep_dir = sweeps / f"dimension-{args.profile}"
    if args.pilot:
        jobs = [["experiment=dimension_dsm_s", f"sigma={s}", f"dataset.dim={d}"]
                for s in PILOT_SIGMAS for d in PILOT_DIMS]
    else:
        jobs = [[f"experiment={'dimension_dsm_s' if loss == 'dsm_s' else 'dimension'}", f"loss={loss}",
                 f"dataset.dim={d}"] for loss in losses for d in dims]
        if args.retime or read_timing(sweep_dir) is None:  # the timing's other networks
            jobs += [["experiment=dimension", f"loss={loss}", f"dataset.dim={WIDTH_DIM}",
                      f"model.hidden=[{a},{b}]"] for loss in ("ism", "ssm_vr") if loss in losses
                     for a, b in WIDTHS]
    problem = check_jobs(jobs, profile)
    if problem:
        print(f"dimension.py: error: {problem}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    if args.pilot:
        pilot_dir = sweeps / f"dimension-pilot-{args.profile}"
        ok = dsmexp("experiment=dimension_dsm_s", *profile, f"sigma={csv(PILOT_SIGMAS)}",
                    f"dataset.dim={csv(PILOT_DIMS)}", f"hydra.sweep.dir={pilot_dir}")
        print(write_pilot_table(pilot_dir).read_text())
        return 0 if ok else 1
    failed = []
    family = [loss for loss in losses if loss in ISM_FAMILY]
    grid = [f"dataset.dim={csv(dims)}"]
    if family and not dsmexp("experiment=dimension", *profile, *grid, f"loss={csv(family)}"):
        failed.append("dimension")
    if "dsm_s" in losses and not dsmexp("experiment=dimension_dsm_s", *profile, *grid):
        failed.append("dimension_dsm_s")
    repeats, warmup = TIMING_REPEATS[args.profile]
    if args.retime or read_timing(sweep_dir) is None:
        print(f"== timing {csv(losses)} at d = {csv(dims)} in one process", flush=True)
        timing = measure(PROFILES[args.profile], dims, losses, repeats, warmup, args.overrides)
        timing["variance"] = same_points_variance(sweep_dir)
        write_timing(sweep_dir, timing)
    out = args.out or Path("outputs") / "figures" / f"dimension-{args.profile}"
    report = build_study_report(sweep_dir, out)
    elapsed = time.perf_counter() - started
    print(f"{report}: Figures 5-7 (png, pdf) and the verdict table, {elapsed:.0f} s in all")
    if failed:
        print(f"some jobs of {', '.join(failed)} failed: see their runs.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
