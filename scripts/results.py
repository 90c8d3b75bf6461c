"""Regenerate the published results under docs/results/: the paper profile (seed 0; under the Gaussian
kernel and, as paper-laplace and paper-student_t, the Laplace and Student-t (df 3) kernels) and the
quick profile over five seeds, each as report.md, Figures 1-4 (PNG) and the sweep's runs.csv, the
dimension study at its quick profile (report.md, Figures 5-7, runs.csv), the multi-scale study at its
quick profile (report.md, Figures 8-9, runs.csv), the sampling study (report.md, Figures 10-11,
runs.csv; it samples the multi-scale and the quick profile's runs too, so it comes after them), the
variance study (report.md, Figures 12-13, runs.csv), the noise-kernel study (report.md, Figure 14, and
the paper's report under each kernel) and the energy study (report.md, Figure 15, runs.csv).

    make results                     # all ten; runs only what is not trained yet (several hours on 2
                                     # cores: each paper-profile sweep is about 2 h of one core)
    python scripts/results.py --only quick

Run it from a checkout at one commit: every report records the commit it was drawn at and the commits
its runs were trained at (summary.json), so a reader can rerun any job bitwise (same seed, settings,
thread count and chunk size).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dsmexp.records.sweeps import load_runs
from dsmexp.studies.kernels.make import KERNELS, sweep_name
from dsmexp.studies.paper.report import build_report
from dsmexp.train.summary import source_commit

ROOT = Path(__file__).resolve().parent.parent
# name: (profile, seeds, the noise kernel's overrides of studies/kernels/make.py)
PUBLISHED = {"paper": ("paper", 1, "gaussian"), "quick": ("quick", 5, "gaussian"),
             "paper-laplace": ("paper", 1, "laplace"), "paper-student_t": ("paper", 1, "student_t")}
PACKAGES = ("torch", "numpy", "scipy", "hydra-core", "matplotlib", "scikit-learn")


def training_span(runs: list) -> float:
    """Seconds from the first run's start to the last run's end: each run ends when its summary.json was
    written and started its own wall time before that (a later sweep that skips the finished runs rewrites
    their .hydra files, so those times say nothing). The sweep's elapsed time when it trained, whatever
    ran beside it."""
    spans = [(path.stat().st_mtime - float(r.summary.get("wall_time_s") or 0), path.stat().st_mtime)
             for r in runs if (path := r.run_dir / "summary.json").exists()]
    return max(e for _, e in spans) - min(s for s, _ in spans) if spans else float("nan")


def provenance(name: str, profile: str, seeds: int, sweep_dir: Path, elapsed: float,
               overrides: list[str]) -> list[str]:
    """Report lines: how to regenerate, the commits, wall times and package versions."""
    runs = load_runs(sweep_dir)
    commits = sorted({str(r.summary.get("commit")) for r in runs})
    train_s = sum(float(r.summary.get("wall_time_s") or 0) for r in runs)
    threads = sorted({str(r.summary.get("threads")) for r in runs})
    span_s = training_span(runs)
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in PACKAGES)
    return [
        f"- regenerate: `make results` (this directory: `python scripts/results.py --only {name}`), which "
        f"runs `make figures PROFILE={profile} SEEDS={seeds}{''.join(' ' + o for o in overrides)}` and "
        "copies its report here",
        f"- report drawn at commit `{source_commit()}`; runs trained at commit "
        f"{', '.join(f'`{c}`' for c in commits)}",
        f"- machine: {platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}; "
        f"python {platform.python_version()}",
        f"- wall time: {span_s / 60:.1f} min from the first run's start to the last run's end (by their "
        f"files' times; {'/'.join(threads)} torch thread(s) per run); "
        f"{train_s / 60:.1f} min of training summed over the {len(runs)} runs (each run's own wall time); "
        f"this regeneration {elapsed / 60:.1f} min (finished runs are reused)",
        f"- packages: {versions}",
    ]


def publish(name: str, profile: str, seeds: int, kernel: str, launcher: str) -> int:
    """`make figures PROFILE=<profile> SEEDS=<seeds>` under one noise kernel (finished runs are reused),
    then its report.md (with where and when it was drawn), Figures 1-4 and runs.csv in docs/results/NAME."""
    started, overrides = time.perf_counter(), KERNELS[kernel]
    cmd = [sys.executable, "-m", "dsmexp.studies.paper.make", "--profile", profile, "--seeds", str(seeds),
           "--launcher", launcher, "--no-report", *overrides]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    code = subprocess.run(cmd).returncode
    sweep_dir = Path("outputs") / "sweeps" / sweep_name(profile, overrides)
    drawn = Path("outputs") / "figures" / f"results-{name}"
    lines = provenance(name, profile, seeds, sweep_dir, time.perf_counter() - started, overrides)
    build_report(sweep_dir, drawn, provenance=lines)
    target = ROOT / "docs" / "results" / name
    target.mkdir(parents=True, exist_ok=True)
    for png in sorted(drawn.glob("figure*.png")):
        shutil.copyfile(png, target / png.name)
    shutil.copyfile(drawn / "report.md", target / "report.md")
    shutil.copyfile(sweep_dir / "runs.csv", target / "runs.csv")
    print(f"{target}: report.md, figures, runs.csv", flush=True)
    return code


def publish_study(name: str, launcher: str) -> int:
    """`make NAME PROFILE=quick` for a study with its own command (finished runs, timings and samples are
    reused), then its report.md (with where and when it was drawn), figure PNGs and runs.csv copied to
    docs/results/NAME."""
    drawn_at = source_commit()  # before this script copies anything into docs/results
    cmd = [sys.executable, "-m", f"dsmexp.studies.{name}.make", "--profile", "quick", "--launcher", launcher]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    code = subprocess.run(cmd).returncode
    sweep_dir = Path("outputs") / "sweeps" / f"{name}-quick"
    drawn = Path("outputs") / "figures" / f"{name}-quick"
    target = ROOT / "docs" / "results" / name
    target.mkdir(parents=True, exist_ok=True)
    for png in sorted(drawn.glob("figure*.png")):
        shutil.copyfile(png, target / png.name)
    runs = load_runs(sweep_dir)
    commits = ", ".join(f"`{c}`" for c in sorted({str(r.summary.get("commit")) for r in runs}))
    train_s = sum(float(r.summary.get("wall_time_s") or 0) for r in runs)
    report = (drawn / "report.md").read_text().splitlines()
    report[1:1] = ["", f"Regenerate: `make results` (`python scripts/results.py --only {name}`); report "
                   f"drawn at commit `{drawn_at}`, runs trained at {commits}; {training_span(runs) / 60:.1f} "
                   "min from the first run's start to the last run's end, "
                   f"{train_s / 60:.1f} min of training summed over the {len(runs)} runs."]
    (target / "report.md").write_text("\n".join(report) + "\n")
    shutil.copyfile(sweep_dir / "runs.csv", target / "runs.csv")
    print(f"{target}: report.md, figures, runs.csv", flush=True)
    return code


def publish_kernels(launcher: str) -> int:
    """`make kernels PROFILE=quick` (three seeds; finished runs are reused), then its report.md (which
    says where it was drawn), Figure 14 and each kernel's paper report, figures and runs.csv copied to
    docs/results/kernels."""
    cmd = [sys.executable, "-m", "dsmexp.studies.kernels.make", "--profile", "quick", "--launcher", launcher]
    print(f"== kernels: {' '.join(cmd[1:])}", flush=True)
    code = subprocess.run(cmd).returncode
    drawn, target = Path("outputs") / "figures" / "kernels-quick", ROOT / "docs" / "results" / "kernels"
    for path in sorted(drawn.rglob("*")):
        if path.is_file() and path.suffix in (".md", ".png"):
            (target / path.relative_to(drawn)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.relative_to(drawn))
    for label, overrides in KERNELS.items():
        runs_csv = Path("outputs") / "sweeps" / sweep_name("quick", overrides) / "runs.csv"
        if runs_csv.exists():
            (target / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(runs_csv, target / label / "runs.csv")
    print(f"{target}: report.md, figure14, each kernel's report, figures and runs.csv", flush=True)
    return code


# each a package under dsmexp/studies/ with a make.py; sampling samples the multiscale and quick sweeps
STUDIES = ("dimension", "multiscale", "sampling", "variance", "kernels", "energy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted([*PUBLISHED, *STUDIES]), action="append",
                        help="publish only this result (repeatable); default: all")
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib"))
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    names = args.only or [*PUBLISHED, *STUDIES]
    codes = [publish_kernels(args.launcher) if name == "kernels"
             else publish_study(name, args.launcher) if name in STUDIES
             else publish(name, *PUBLISHED[name], args.launcher) for name in names]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
