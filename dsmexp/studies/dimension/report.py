"""The dimension study's report.md (and the DSM-S pilot's pilot.md), from its saved runs only, with
Figures 5-7 (figures.py) drawn from the numbers of numbers.py.

    python -m dsmexp.dimension outputs/sweeps/dimension-quick
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from dsmexp.records.sweeps import load_runs
from dsmexp.studies.dimension.figures import figure5, figure6, figure7
from dsmexp.studies.dimension.numbers import (
    STUDY_LOSSES,
    Study,
    Timing,
    load_study,
    study_run,
    verdicts,
)
from dsmexp.studies.markdown import smoke_caveat
from dsmexp.studies.paper.figures import save
from dsmexp.studies.plotting import loss_title


def _fmt(value, spec: str = ".3g") -> str:
    """A number, or a same-points variance pair as `estimator (ratio to exact)`."""
    if isinstance(value, dict):
        return f"{value['estimator']:.3g} ({value['estimator'] / value['exact']:.3g}x)"
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def per_dim_table(study: Study, losses: list[str], value, spec: str) -> list[str]:
    """One row per objective, one column per d, value(run) formatted with spec."""
    dims = sorted({d for _, d in study})
    rows = [[loss_title(loss), *(_fmt(value(study[(loss, d)]), spec) if (loss, d) in study else "n/a"
                            for d in dims)] for loss in losses]
    return markdown_table(["objective", *(f"d = {d}" for d in dims)], rows)


def settings_text(study: Study) -> str:
    """One paragraph: the data, network, optimiser, steps and how each objective was run."""
    first = next(iter(study.values())).run
    cfg = first.config
    dsm = [r.run for (loss, _), r in study.items() if loss == "dsm_s"]
    text = (f"Half-moon (noise {cfg['dataset']['noise']}) in a random 2-D plane of R^d, N = "
            f"{cfg['dataset']['n_samples']}; MLP {cfg['model']['hidden']} {cfg['model']['activation']}; "
            f"{cfg['optimizer']['name']} lr {cfg['optimizer']['lr']}; {cfg['steps']} steps; "
            f"seed {cfg['seed']}; "
            f"profile {cfg.get('profile_name')}. Exact ISM, SSM-VR, SSM and FD-SSM train on clean data "
            "(sigma = 0)")
    if dsm:
        text += (f"; DSM-S at sigma = {dsm[0].sigma:g} (the best of a pilot at the quick profile, see "
                 f"conf/experiment/dimension_dsm_s.yaml) with M = {dsm[0].config['noise_samples']} "
                 "draws per point")
    return text + (f". Only the trained objective is computed (diagnostics_every = "
                   f"{cfg.get('diagnostics_every')}); device: {first.summary.get('device')}.")


def answer_table(study: Study, losses: list[str], timing: Timing | None) -> list[str]:
    header = ["d", "budget (s)", "winner", *(loss_title(loss) for loss in losses), "ISM / SSM-VR cost"]
    rows = [[str(v.dim), _fmt(v.budget, ".1f"), f"**{loss_title(v.winner)}**",
             *(_fmt(v.best.get(loss), ".4f") for loss in losses), _fmt(v.ism_over_ssm_vr, ".2f")]
            for v in verdicts(study, timing)]
    return markdown_table(header, rows)


def _ms_cell(timing: Timing, loss: str, dim: int) -> str:
    """A median with its quartiles, `4.52 [4.31, 4.80]` (the median alone for an older timing.json)."""
    median = _fmt(timing.ms(loss, dim), ".2f")
    q = timing.by_d_iqr.get(loss, {}).get(dim)
    return f"{median} [{q[0]:.2f}, {q[1]:.2f}]" if q else median


def timing_tables(timing: Timing, losses: list[str]) -> list[str]:
    dims = sorted({d for row in timing.by_d.values() for d in row})
    threads = f"{timing.threads} thread{'s' if timing.threads != 1 else ''}"
    quartiles = "; in brackets the quartiles of the steps" if timing.by_d_iqr else ""
    lines = [f"Measured in one process, objectives interleaved step by step ({threads}; medians{quartiles}; "
             "dsmexp.studies.dimension.timing, timing.json). Where the quartile ranges of two entries "
             "overlap, their difference is timing noise.", ""]
    lines += markdown_table(["objective", *(f"d = {d}" for d in dims)],
                            [[loss_title(loss), *(_ms_cell(timing, loss, d) for d in dims)]
                             for loss in losses if loss in timing.by_d])
    widths = sorted({w for row in timing.by_width.values() for w in row}, key=lambda w: int(w.split("-")[0]))
    if widths:
        lines += [f"The exact trace against the hidden widths at d = {timing.width_dim} (ms per step):", ""]
        lines += markdown_table(["objective", *widths],
                                [[loss_title(loss), *(_fmt(row.get(w), ".2f") for w in widths)]
                                 for loss, row in timing.by_width.items()])
    return lines


def report_text(study: Study, timing: Timing | None, figures: list[str]) -> str:
    """report.md: the answer table, then per-step cost, variance and final distance tables."""
    losses = [loss for loss in STUDY_LOSSES if any(k[0] == loss for k in study)]
    lines = ["# The dimension study: what each score-matching objective costs as d grows", "",
             *smoke_caveat(r.run.config.get("profile_name", "default") for r in study.values()),
             settings_text(study), "", "## Answer", "",
             "Per d, every objective is read at the same wall time, the shortest total training time among "
             "them; the winner reached the lowest esm_data_rel (0.5 E|s - grad log p|^2 / E|grad log p|^2 on "
             "held-out data; s = 0 scores 0.5) by then. The last column is exact ISM's milliseconds per step "
             "over SSM-VR's.", ""]
    lines += answer_table(study, losses, timing)
    lines += ["## Milliseconds per step", ""]
    if timing is not None:
        lines += timing_tables(timing, losses)
    lines += ["In the training runs themselves (median of each run's step times, jobs side by side):", ""]
    lines += per_dim_table(study, losses, lambda r: r.ms_per_step, ".2f")
    if timing is not None and timing.variance:
        lines += ["## Per-point variance of the fitting term at the final network, on the same points", "",
                  "Each run's final network takes one step with every diagnostic on: its objective's fitting "
                  "term and the exact trace div s on the same z. Estimator variance / exact-trace variance "
                  "in brackets.", ""]
        lines += per_dim_table(study, losses, lambda r: timing.variance.get(r.loss, {}).get(r.dim), "")
    lines += ["## Per-point variance of the fitting term during training (median, second half)", ""]
    lines += per_dim_table(study, losses, lambda r: r.variance, ".3g")
    lines += ["## esm_data_rel at the end of training", ""]
    lines += per_dim_table(study, losses, lambda r: r.final_rel, ".4f")
    lines += ["Timings are wall-clock on a shared machine, so other jobs disturb them; ratios between "
              "objectives at the same d are the robust part.", "", "## Figures", ""]
    return "\n".join(lines + [f"![{name}]({name}.png)" for name in figures]) + "\n"


def build_study_report(sweep_dir: Path, out: Path) -> Path:
    """Figures 5-7 and report.md in `out`, from the study's sweep directory (runs and timing.json)."""
    study = load_study(sweep_dir)
    if not study:
        raise SystemExit(f"{sweep_dir}: no runs of the dimension study")
    timing = Timing.load(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for name, fig in (("figure5", figure5(study, timing)), ("figure6", figure6(study)),
                      ("figure7", figure7(study, timing))):
        save(fig, out, name)
        names.append(name)
    path = out / "report.md"
    path.write_text(report_text(study, timing, names))
    return path


def write_pilot_table(pilot_dir: Path) -> Path:
    """pilot.md: final esm_data_rel of DSM-S per sigma and d, and the sigma with the lowest mean."""
    runs = [study_run(r) for r in load_runs(pilot_dir) if r.loss == "dsm_s" and len(r.metrics["step"])]
    sigmas = sorted({r.run.sigma for r in runs})
    dims = sorted({r.dim for r in runs})
    final = {(r.run.sigma, r.dim): r.final_rel for r in runs}
    means = {s: float(np.mean([final.get((s, d), math.nan) for d in dims])) for s in sigmas}
    finite = {s: v for s, v in means.items() if math.isfinite(v)}
    lines = ["# DSM-S noise scale for the dimension study", "",
             "Final esm_data_rel of DSM-S per sigma and d; the chosen sigma has the lowest mean over d.", ""]
    lines += markdown_table(["sigma", *(f"d = {d}" for d in dims), "mean"],
                            [[f"{s:g}", *(_fmt(final.get((s, d), math.nan), ".4f") for d in dims),
                              _fmt(means[s], ".4f")] for s in sigmas])
    if finite:
        lines += ["", f"best: sigma = {min(finite, key=finite.get):g}"]
    path = Path(pilot_dir) / "pilot.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dsmexp.dimension",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("sweep_dir", type=Path, help="e.g. outputs/sweeps/dimension-quick")
    parser.add_argument("--out", type=Path, help="default: outputs/figures/<sweep name>")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    out = args.out or Path("outputs/figures") / args.sweep_dir.name
    print(build_study_report(args.sweep_dir, out))


if __name__ == "__main__":
    main()
