"""The multi-scale study (`make multiscale`, `dsmexp-multiscale`): train the five objectives across two
schedules on the half-moon, a 2-D Gaussian mixture and the half-moon embedded in R^8, three seeds each
(finished runs are skipped); measure the gradient norm per level and each objective's step
(measure.json); draw Figures 8-9 and report.md from the saved files.

    make multiscale                       # PROFILE=quick
    dsmexp-multiscale --profile smoke --launcher basic
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dsmexp.studies.dimension.make import check_jobs, csv, dsmexp, launcher_overrides
from dsmexp.studies.multiscale.measure import level_gradients, step_times
from dsmexp.studies.multiscale.numbers import STUDY_LOSSES, read_measure, write_measure
from dsmexp.studies.multiscale.report import build_study_report

PROFILES = {"quick": "multiscale_quick", "paper": "multiscale_paper", "smoke": "smoke"}
SIGMA_MINS = (0.01, 0.001)
TIMING = {"quick": (30, 3), "paper": (30, 3), "smoke": (2, 1)}  # timed steps, warm-up steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 (default 3)")
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib", "submitit_local"))
    parser.add_argument("--remeasure", action="store_true", help="write measure.json again if it exists")
    parser.add_argument("--out", type=Path, help="default: outputs/figures/multiscale-<profile>")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds}: must be >= 1")
    sweep_dir = Path("outputs") / "sweeps" / f"multiscale-{args.profile}"
    common = [
        "experiment=multiscale",
        f"+profile={PROFILES[args.profile]}",
        *launcher_overrides(args.launcher),
        f"hydra.sweep.dir={sweep_dir}",
    ]
    grid = [
        f"loss={csv(STUDY_LOSSES)}",
        f"seed={csv(range(args.seeds))}",
        f"schedule.sigma_min={csv(SIGMA_MINS)}",
    ]
    sweeps = [["dataset=half_moon,gmm", *grid], ["dataset.dim=8", *grid]]
    jobs = [
        [f"dataset={d}", f"loss={loss}", f"schedule.sigma_min={s}"]
        for d in ("half_moon", "gmm")
        for loss in STUDY_LOSSES
        for s in SIGMA_MINS
    ] + [["dataset.dim=8"]]
    problem = check_jobs(jobs, [c for c in common if not c.startswith("hydra")])
    if problem:
        print(f"dsmexp-multiscale: error: {problem}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    failed = [i for i, sweep in enumerate(sweeps) if not dsmexp(*common, *sweep)]
    if args.remeasure or read_measure(sweep_dir) is None:
        print("== measuring the gradient norm per level and each objective's step in one process", flush=True)
        repeats, warmup = TIMING[args.profile]
        gradients = level_gradients(sweep_dir)
        load_before = os.getloadavg()[0]
        ms_per_step = step_times(PROFILES[args.profile], list(STUDY_LOSSES), repeats, warmup)
        write_measure(sweep_dir, {"gradients": gradients, "ms_per_step": ms_per_step,
                                  "load_average": [load_before, os.getloadavg()[0]]})
    out = args.out or Path("outputs") / "figures" / f"multiscale-{args.profile}"
    report = build_study_report(sweep_dir, out)
    print(
        f"{report}: Figures 8-9 (png, pdf) and the claims table, {time.perf_counter() - started:.0f} s in all"
    )
    if failed:
        print("some jobs failed: see the sweep's runs.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
