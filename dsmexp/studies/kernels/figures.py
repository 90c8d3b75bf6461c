"""Figure 14 of the noise-kernel study, from claims.py's numbers only.

Left: DSM's normalised fitting-term variance sigma^2 Var / mean |s|^2 (claims.normalised_variance) of
the DSM-S runs against sigma, one line per kernel (mean over the seeds, band min-max), each kernel's
Fisher information dashed (the small-sigma prediction). Right: the raw per-point variance of the fitting
term, log-log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from dsmexp.records.sweeps import Run
from dsmexp.studies.kernels.claims import fisher_information, normalised_variance, raw_variance
from dsmexp.studies.plotting import legend_below

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def figure14(kernels: dict[str, tuple[dict, list[Run]]], out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for (label, (noise, runs)), colour in zip(kernels.items(), COLOURS):
        dsm = [r for r in runs if r.loss == "dsm_s" and r.sigma > 0 and r.status == "completed"]
        sigmas = sorted({float(r.sigma) for r in dsm})
        if not sigmas:
            continue
        for ax, value in zip(axes, (normalised_variance, raw_variance)):
            rows = [np.array([value(r) for r in dsm if float(r.sigma) == s]) for s in sigmas]
            ax.fill_between(sigmas, [np.nanmin(v) for v in rows], [np.nanmax(v) for v in rows], color=colour,
                            alpha=0.15, linewidth=0)
            ax.plot(sigmas, [np.nanmean(v) for v in rows], marker="o", color=colour, label=label)
        dim = int(dsm[0].config["dataset"].get("dim", 2))
        axes[0].axhline(fisher_information(noise, dim), color=colour, linestyle="--", linewidth=1)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("sigma")
    axes[0].set_ylabel("sigma^2 Var(fit_dsm) / mean |s|^2  (dashed: Fisher information)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("per-point variance of DSM's fitting term")
    legend_below(fig, [axes[0]], columns=3)
    fig.suptitle("Figure 14: DSM's fitting-term variance under each noise kernel (DSM-S runs)", fontsize=11)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"figure14.{ext}", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return "figure14"
