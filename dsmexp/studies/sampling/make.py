"""The sampling study (`make sampling`, `dsmexp-sampling`): train the toy of Song & Ermon (2019) with each
objective over --seeds training seeds (experiment=ncsn_toy; finished runs are skipped), sample every run
with every sampler and the exact score with every sampler (python -m dsmexp.sample does the same one at a
time; finished samples are kept); sample the diffusion-regime study's 2-D runs (its sweep at the same
profile) with the annealed samplers and the paper's single-sigma runs (the Figure 1-3 sweep at the same
profile) with plain Langevin at each run's sigma, where those sweeps exist; then draw Figures 10-11 and
report.md from the saved files.

    make sampling                          # PROFILE=quick
    dsmexp-sampling --profile smoke --launcher basic
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dsmexp.config.compose import compose_sample
from dsmexp.errors import DsmexpError
from dsmexp.records.sweeps import load_runs
from dsmexp.studies.dimension.make import check_jobs, csv, dsmexp, launcher_overrides
from dsmexp.studies.sampling.claims import ANNEALED
from dsmexp.studies.sampling.numbers import (
    STUDY_LOSSES,
    STUDY_SAMPLERS,
    diffusion_groups,
    paper_group,
    toy_group,
)
from dsmexp.studies.sampling.report import build_report
from dsmexp.train.sampling import prepare, sample_run

# profile -> (training overrides, sample command overrides)
PROFILES = {
    "quick": ([], ["n=1280", "seeds=3"]),
    "smoke": (["steps=40", "noise_samples=2", "eval_every=20", "diagnostics_every=10", "profile_name=smoke"],
              ["n=200", "seeds=2", "data_n=500", "sampler.steps=50", "sampler.steps_per_level=5"]),
}
# the diffusion-regime runs (the multi-scale study's sweep at the same profile, when it is there): the
# annealed samplers only, NCSN's eps = 2e-5 for sigma_L = 0.01 (Song & Ermon 2019, Sec. 5), 500 reverse
# steps, two sampler seeds (the half-moon's exact score is a quadrature, about 70 ms a call here)
DIFFUSION = {"quick": ["n=1000", "seeds=2", "sampler.eps=2e-5", "sampler.steps=500"],
             "smoke": ["n=200", "seeds=2", "data_n=500", "sampler.eps=2e-5", "sampler.steps=50",
                       "sampler.steps_per_level=5"]}
# the paper's single-sigma runs (half-moon, noise 0.05): plain Langevin at each run's sigma from a box
# around the data; the step keeps x - (alpha / 2) x / var contracting for var = 0.05^2 + sigma^2 down to
# sigma = 0 (alpha / (2 var) = 0.4) and 1000 steps diffuse sqrt(1000 alpha) = 1.4 along the arcs
PAPER_SEEDS = 3
PAPER = {"quick": ["n=1000", "seeds=2", "sampler.step_size=2e-3",
                   "sampler.steps=1000", "sampler.box=[-2,3]"],
         "smoke": ["n=200", "seeds=2", "data_n=500", "sampler.step_size=2e-3",
                   "sampler.steps=50", "sampler.box=[-2,3]"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--launcher", default="auto", choices=("auto", "basic", "joblib", "submitit_local"))
    parser.add_argument("--out", type=Path, help="default: outputs/figures/sampling-<profile>")
    parser.add_argument("--seeds", type=int, help="training seeds 0..K-1 of the toy (default 3; smoke 2)")
    parser.add_argument("--diffusion", type=Path, help="the multi-scale study's sweep to sample too "
                        "(default: outputs/sweeps/multiscale-<profile>, when it exists)")
    parser.add_argument("--paper", type=Path, help="the paper's Figure 1-3 sweep to sample too (default: "
                        "outputs/sweeps/figures-<profile>, when it exists)")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (2 if args.profile == "smoke" else 3)
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds}: must be >= 1")
    train, sampling = PROFILES[args.profile]
    sweep_dir = Path("outputs") / "sweeps" / f"sampling-{args.profile}"
    common = ["experiment=ncsn_toy", *train, *launcher_overrides(args.launcher),
              f"hydra.sweep.dir={sweep_dir}"]
    problem = check_jobs([[f"loss={loss}", f"seed={seed}"] for loss in STUDY_LOSSES
                          for seed in range(args.seeds)], [c for c in common if not c.startswith("hydra")])
    if problem:
        print(f"dsmexp-sampling: error: {problem}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    trained = dsmexp(*common, f"loss={csv(STUDY_LOSSES)}", f"seed={csv(range(args.seeds))}")
    runs = sorted((r for r in load_runs(sweep_dir) if r.status == "completed"),
                  key=lambda r: (r.seed, r.loss))
    jobs = [(run, sampler, "model", sampling) for run in runs for sampler in STUDY_SAMPLERS]
    jobs += [(runs[0], sampler, "exact", sampling) for sampler in STUDY_SAMPLERS] if runs else []
    diffusion_dir = args.diffusion or Path("outputs") / "sweeps" / f"multiscale-{args.profile}"
    groups = diffusion_groups(diffusion_dir) if diffusion_dir.is_dir() else []
    for group in groups:
        settings = DIFFUSION[args.profile]
        jobs += [(run, sampler, "model", settings) for run in group.runs for sampler in ANNEALED]
        jobs += [(group.runs[0], sampler, "exact", settings) for sampler in ANNEALED]
    paper_dir = args.paper or Path("outputs") / "sweeps" / f"figures-{args.profile}"
    paper = paper_group(paper_dir) if paper_dir.is_dir() else None
    if paper is not None:  # the first PAPER_SEEDS training seeds of the paper's sweep
        paper.runs = [r for r in paper.runs if r.seed < PAPER_SEEDS]
    if paper is not None and paper.runs:
        jobs += [(run, "langevin", "model", PAPER[args.profile]) for run in paper.runs]
        first = {}  # one exact-score sample per sigma
        for run in sorted(paper.runs, key=lambda r: (r.seed, r.loss)):
            first.setdefault(run.sigma, run)
        jobs += [(run, "langevin", "exact", PAPER[args.profile]) for run in first.values()]
    load_before = os.getloadavg()[0]
    sampled = time.perf_counter()
    try:
        # every sample checked (its run loaded) before any sampling
        prepared = [prepare(compose_sample(str(run.run_dir), [f"sampler={name}", f"score={score}", *extra]))
                    for run, name, score, extra in jobs]
        for k, job in enumerate(prepared, 1):
            cfg = job.sample
            print(f"== sample {k}/{len(prepared)}: {cfg.sampler.name}, {cfg.score} score, {cfg.run}",
                  flush=True)
            sample_run(job)
    except DsmexpError as err:
        print(f"dsmexp-sampling: error: {err}", file=sys.stderr)
        return 1
    sampling_s = time.perf_counter() - sampled
    train_s = sum(float(r.summary.get("wall_time_s") or 0) for r in runs)
    sampled_s = sum(sum(json.loads(path.read_text())["seconds"])
                    for run in {j[0].run_dir: j[0] for j in jobs}.values()
                    for path in (run.run_dir / "samples").glob("*/quality.json"))
    out = args.out or Path("outputs") / "figures" / f"sampling-{args.profile}"
    preamble = [
        "The mixture 0.8 N((5, 5), I) + 0.2 N((-5, -5), I) (Song & Ermon 2019, Sec. 3.2.2; "
        f"`experiment=ncsn_toy`, profile {args.profile}): one noise-conditional MLP per objective "
        f"({', '.join(STUDY_LOSSES)}) and training seed (0 to {args.seeds - 1}), trained "
        "across 10 geometric levels from 20 to 1 with sigma2 weighting. Every sampler runs on each learned "
        "score and on the exact score of q_sigma (the control: what remains with it is the sampler's own "
        "error), from points uniform in [-8, 8]^2 (the Langevin samplers) or N(0, 20^2 I) (the others), "
        f"sample settings `{' '.join(sampling)}`; quality against a fresh sample of the data, never the "
        "training points.",
        "",
        "What it reproduces: Song & Ermon's Figure 3 (plain Langevin on the exact score gets the mode "
        "weights wrong, annealed Langevin gets them right; they report no numbers, only the picture). "
        f"Sampling took {sampled_s / 60:.1f} min summed over the {len(jobs)} samples (each sampler's own "
        f"time, quality measures excluded); this call sampled for {sampling_s / 60:.1f} min in one process "
        f"(1-minute load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}; finished samples are kept); "
        f"training {len(runs)} runs, {train_s / 60:.1f} min summed over the runs.",
    ]
    if groups:
        preamble += ["", "The diffusion-regime runs: the multi-scale study's 2-D runs (every training seed) "
                     f"on its schedule from 1 to 0.01 ({diffusion_dir}), each objective's network and the "
                     "exact score, with the annealed samplers only, settings "
                     f"`{' '.join(DIFFUSION[args.profile])}`."]
    if paper is not None and paper.runs:
        preamble += ["", f"The paper's single-sigma runs ({paper_dir}: half-moon, every objective and sigma "
                     f"of the Figure 1-3 sweep, training seeds 0 to {PAPER_SEEDS - 1}), each network and the "
                     "exact score of q_sigma at its sigma, with plain Langevin, settings "
                     f"`{' '.join(PAPER[args.profile])}`."]
    report = build_report(toy_group(sweep_dir), groups, out, preamble, paper)
    print(f"{report}: Figures 10-11 and the claims table, {time.perf_counter() - started:.0f} s in all")
    if not trained:
        print("some training jobs failed: see the sweep's runs.csv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
