"""Rebuild the study: run the Figure 1-3 sweeps at one profile (finished runs are skipped), then draw
Figures 1-4 and report.md from the saved files.

    make figures                    # PROFILE=quick: minutes on a 2-core CPU
    make figures PROFILE=paper      # the paper's exact settings (a GPU makes it minutes)
    make figures SEEDS=5            # every grid point with seeds 0..4: median lines, min-max bands
    make figures noise.kernel=laplace   # Hydra overrides for every run: their own sweep and report
    dsmexp-figures --profile smoke --launcher basic   # python -m dsmexp.studies.paper.make, the same
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from dsmexp.studies.paper.report import build_report

EXPERIMENTS = ("fig1", "fig2", "fig3")


def launcher_overrides(launcher: str) -> list[str]:
    """joblib runs CPU jobs side by side (one thread each); on a GPU, jobs run one after another."""
    if launcher == "auto":
        launcher = "basic" if torch.cuda.is_available() else "joblib"
    return [] if launcher == "basic" else [f"hydra/launcher={launcher}"]


def sweep_name(override: str) -> str:
    """An override as part of a directory name: noise.kernel=laplace -> noise.kernel-laplace."""
    return "".join(c if c.isalnum() or c in "._" else "-" for c in override.lstrip("+~"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--profile", default="quick", choices=("paper", "quick", "smoke"))
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib", "submitit_local"))
    parser.add_argument("--seeds", type=int, default=1,
                        help="run every grid point with seeds 0..SEEDS-1 (default 1: seed 0 only)")
    parser.add_argument("--out", type=Path, help="default: outputs/figures/<profile>")
    parser.add_argument("--no-report", action="store_true", help="run the sweeps only")
    parser.add_argument("--logger", default="none", choices=("none", "tensorboard", "mlflow"),
                        help="live tracking of every job (README, Live tracking)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra overrides for every run (e.g. noise.kernel=laplace); the runs go to "
                             "their own sweep, outputs/sweeps/figures-<profile>-<overrides>")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds}: must be >= 1")
    bad = [o for o in args.overrides if "=" not in o or o.startswith(("hydra", "-")) or "," in o]
    if bad:
        parser.error(f"{bad[0]}: an override is KEY=VALUE with one value (not a hydra.* key or a sweep)")
    seeds = "seed=" + ",".join(str(s) for s in range(args.seeds))
    name = "-".join([f"figures-{args.profile}", *(sweep_name(o) for o in sorted(args.overrides))])
    sweep_dir = Path("outputs") / "sweeps" / name
    out = args.out or Path("outputs") / "figures" / name.removeprefix("figures-")
    started, failed = time.perf_counter(), []
    for experiment in EXPERIMENTS:
        cmd = [sys.executable, "-m", "dsmexp", "-m", f"experiment={experiment}", f"+profile={args.profile}",
               seeds, f"logger={args.logger}", *launcher_overrides(args.launcher), *args.overrides,
               *([f"hydra.sweep.dir={sweep_dir}"] if args.overrides else [])]
        print(f"== {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(experiment)
    if not args.no_report:
        report = build_report(sweep_dir, out)
        elapsed = time.perf_counter() - started
        print(f"{report}: figures 1-4 (png, pdf) and the claims table, {elapsed:.0f} s in all")
    if failed:
        print(f"some jobs of {', '.join(failed)} failed: see {sweep_dir}/runs.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
