"""The noise-kernel study (`make kernels`, `dsmexp-kernels`): the paper study's Figures 1-3 sweeps
(`make figures`) under the Gaussian, Laplace and Student-t (df = 3) kernels at one profile and seeds
(finished runs are reused), each with its own paper report; then Figure 14 and report.md with the
kernel claims (claims.py), and each kernel's paper report copied beside it.

    make kernels                        # PROFILE=quick, 3 seeds
    dsmexp-kernels --profile smoke --seeds 1 --launcher basic
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from dsmexp.records.sweeps import load_runs
from dsmexp.studies.kernels.report import build_report
from dsmexp.studies.paper import make as paper

# label: the overrides of its runs (the Gaussian runs are the paper study's own sweep)
KERNELS = {"gaussian": [], "laplace": ["noise.kernel=laplace"],
           "student_t": ["noise.kernel=student_t", "noise.df=3"]}


def sweep_name(profile: str, overrides: list[str]) -> str:
    """The sweep `make figures PROFILE=<profile> <overrides>` writes (paper/make.py)."""
    return "-".join([f"figures-{profile}", *(paper.sweep_name(o) for o in sorted(overrides))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--profile", default="quick", choices=("paper", "quick", "smoke"))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 (default 3)")
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib", "submitit_local"))
    parser.add_argument("--out", type=Path, help="default: outputs/figures/kernels-<profile>")
    parser.add_argument("--no-runs", action="store_true", help="the report from the saved runs only")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds}: must be >= 1")
    out = args.out or Path("outputs") / "figures" / f"kernels-{args.profile}"
    started, load_before, failed = time.perf_counter(), os.getloadavg()[0], []
    sweeps = {}
    for label, overrides in KERNELS.items():
        name = sweep_name(args.profile, overrides)
        sweeps[label] = Path("outputs") / "sweeps" / name
        if not args.no_runs:
            print(f"== {label}: make figures PROFILE={args.profile} {' '.join(overrides)}", flush=True)
            if paper.main(["--profile", args.profile, "--seeds", str(args.seeds), "--launcher", args.launcher,
                           *overrides]) != 0:
                failed.append(label)
    runs = {label: [r for r in (load_runs(path) if path.is_dir() else []) if r.seed < args.seeds]
            for label, path in sweeps.items()}
    train_s = sum(float(r.summary.get("wall_time_s") or 0) for rs in runs.values() for r in rs)
    preamble = [
        f"Profile {args.profile}, seeds 0 to {args.seeds - 1}: the paper study's Figure 2 grid (DSM-S and "
        "ISM at sigma in {0, 1e-4, 1e-3, 1e-2, 1e-1}; Figures 1 and 3 reuse its sigma = 0.01 runs) under "
        "each kernel at scale sigma: gaussian (eps ~ N(0, I)), laplace (independent Laplace(0, 1) "
        "coordinates, variance 2 per coordinate), student_t (multivariate t, df = 3). DSM's target is the "
        "kernel's grad_z log q(z | x) (dsmexp/core/noise.py); the reference score of q_sigma is exact "
        "under each kernel (dsmexp/core/kernel_densities.py).",
        "",
        "What it reproduces: the paper's claims (Figures 1-4) under each kernel, in each kernel's own "
        "paper report below; and the issue's kernel claims. The paper states its results for the "
        "Gaussian only.",
        "",
        f"Training: {sum(map(len, runs.values()))} runs, {train_s / 60:.1f} min summed over the runs; this "
        f"call {(time.perf_counter() - started) / 60:.1f} min (1-minute load average {load_before:.2f} -> "
        f"{os.getloadavg()[0]:.2f}; finished runs are reused).",
    ]
    report = build_report(sweeps, out, preamble, args.seeds)
    for label, overrides in KERNELS.items():
        source = Path("outputs") / "figures" / sweep_name(args.profile, overrides).removeprefix("figures-")
        if source.is_dir():
            target = out / label
            target.mkdir(parents=True, exist_ok=True)
            for path in [source / "report.md", *sorted(source.glob("figure*.png"))]:
                shutil.copy2(path, target / path.name)
    print(f"{report}: Figure 14 and the kernel claims, {time.perf_counter() - started:.0f} s in all")
    if failed:
        print(f"dsmexp-kernels: some runs of {', '.join(failed)} failed: see their runs.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
