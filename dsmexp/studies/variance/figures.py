"""Figures 12 and 13 of the variance study, from numbers.py only.

Figure 12: the gradient variance (median over the second half of the steps) against sigma, log-log, one
line per variant (mean over the seeds, band min-max), the least-squares slope in the legend; the exact
ISM gradient's variance on the DSM-S runs' own z dashed. Figure 13: esm_data against the step at
sigma = 1e-3 and 1e-4, one line per variant (mean over the seeds, band min-max).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from dsmexp.studies.plotting import legend_below
from dsmexp.studies.variance.numbers import COLOURS, LABELS, SIGMAS, VARIANTS, StudyRun, slope, table


def _save(fig, out: Path, name: str) -> str:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return name


def figure12(runs: list[StudyRun], out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    values = table(runs, lambda r: r.late("grad_var"))
    exact = table([r for r in runs if r.variant == "dsm_s"], lambda r: r.late("grad_var_ism"))
    for name in VARIANTS:
        sigmas = [s for s in SIGMAS if (name, s) in values and np.isfinite(values[(name, s)]).any()]
        if not sigmas:
            continue
        rows = [np.array(values[(name, s)]) for s in sigmas]
        means = [float(np.nanmean(r)) for r in rows]
        ax.fill_between(sigmas, [np.nanmin(r) for r in rows], [np.nanmax(r) for r in rows],
                        color=COLOURS[name], alpha=0.15, linewidth=0)
        ax.plot(sigmas, means, marker="o", color=COLOURS[name],
                label=f"{LABELS[name]} (slope {slope(sigmas, means):.2f})")
    sigmas = [s for s in SIGMAS if ("dsm_s", s) in exact and np.isfinite(exact[("dsm_s", s)]).any()]
    if sigmas:
        ax.plot(sigmas, [float(np.nanmean(exact[("dsm_s", s)])) for s in sigmas], color=COLOURS["ism"],
                linestyle="--", linewidth=1, label="exact ISM gradient on the DSM-S runs' z")
    ax.set_xscale("log")
    if ax.lines:
        ax.set_yscale("log")
    ax.set_xlabel("sigma")
    ax.set_ylabel("per-point gradient variance over the noise")
    legend_below(fig, [ax], columns=2)
    fig.suptitle("Figure 12: gradient variance against sigma (band: min-max over seeds)")
    return _save(fig, out, "figure12")


def figure13(runs: list[StudyRun], out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, sigma in zip(axes, (1e-3, 1e-4)):
        for name in VARIANTS:
            mine = [r for r in runs if r.variant == name and r.sigma == sigma]
            if not mine:
                continue
            curves = []
            for r in mine:
                m = r.run.metrics
                keep = np.isfinite(m["esm_data"])
                curves.append((m["step"][keep], m["esm_data"][keep]))
            length = min(len(c[1]) for c in curves)
            steps = curves[0][0][:length]
            stack = np.stack([c[1][:length] for c in curves])
            ax.fill_between(steps, stack.min(0), stack.max(0), color=COLOURS[name], alpha=0.15, linewidth=0)
            ax.plot(steps, stack.mean(0), color=COLOURS[name], label=LABELS[name])
        ax.set_yscale("log")
        ax.set_title(f"sigma = {sigma:g}")
        ax.set_xlabel("step")
    axes[0].set_ylabel("esm_data (distance to the data score)")
    legend_below(fig, list(axes), columns=5)
    fig.suptitle("Figure 13: esm_data against the step (mean over seeds, band min-max)")
    return _save(fig, out, "figure13")
