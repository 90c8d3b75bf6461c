"""Figures 10 and 11 of the sampling study, from numbers.load_cells only.

Figure 10: a grid of scatter plots, rows the samplers, columns the exact score then each objective (first
sampler seed; the fresh data sample in grey). Figure 11: the samples' MMD^2 and mode-weight error per
objective, one line per sampler, bars one standard error over the sampler seeds, the exact score dashed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from dsmexp.studies.plotting import legend_below, loss_label
from dsmexp.studies.sampling.numbers import EXACT, STUDY_LOSSES, STUDY_SAMPLERS, Cell

SAMPLER_COLOURS = {"langevin": "#000000", "annealed_langevin": "#E69F00", "reverse_sde": "#56B4E9",
                   "pf_ode": "#009E73", "pc": "#CC79A7"}


def _save(fig, out: Path, name: str) -> str:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return name


def _limits(cells: dict[tuple[str, str], Cell]) -> tuple[float, float]:
    """A square window around the data: its 0.5-99.5% range, widened by half."""
    data = next(iter(cells.values())).data
    lo, hi = np.percentile(data, 0.5), np.percentile(data, 99.5)
    pad = 0.5 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def figure10(cells: dict[tuple[str, str], Cell], out: Path, name: str = "figure10", title: str = "") -> str:
    columns = [EXACT, *(loss for loss in STUDY_LOSSES if any(c == loss for _, c in cells))]
    rows = [s for s in STUDY_SAMPLERS if any(r == s for r, _ in cells)]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)),
                             sharex=True, sharey=True, squeeze=False)
    window = _limits(cells)
    for i, sampler in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            cell = cells.get((sampler, column))
            if cell is not None:
                ax.scatter(*cell.data[:1000].T, s=1, c="0.8", rasterized=True)
                ax.scatter(*cell.samples[:1000].T, s=1, c=SAMPLER_COLOURS[sampler], rasterized=True)
                ax.set_title(f"w(5,5) = {cell.mean.get('weight_0', float('nan')):.2f}", fontsize=8)
            ax.set_xlim(*window)
            ax.set_ylim(*window)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_xlabel("exact score" if column == EXACT else loss_label(column), fontsize=9)
                ax.xaxis.set_label_position("top")
            if j == 0:
                ax.set_ylabel(sampler, fontsize=9)
    fig.suptitle(f"Figure 10{title}: samples (first sampler seed) from the exact and the learned scores; "
                 "data in grey")
    return _save(fig, out, name)


def figure11(cells: dict[tuple[str, str], Cell], out: Path, name: str = "figure11", title: str = "") -> str:
    losses = [loss for loss in STUDY_LOSSES if any(c == loss for _, c in cells)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    mixture = any("weight_error" in c.mean for c in cells.values())
    second = ("weight_error", "largest mode-weight error") if mixture else ("w2", "exact W2")
    for ax, key, panel in ((axes[0], "mmd2_h1", "MMD^2 (median-heuristic bandwidth)"), (axes[1], *second)):
        for sampler in STUDY_SAMPLERS:
            points = [(k, cells[(sampler, loss)]) for k, loss in enumerate(losses)
                      if (sampler, loss) in cells]
            if not points:
                continue
            colour = SAMPLER_COLOURS[sampler]
            ax.errorbar([k for k, _ in points], [c.mean.get(key) for _, c in points],
                        yerr=[c.se.get(key) or 0 for _, c in points], color=colour, marker="o", capsize=3,
                        label=sampler)
            exact = cells.get((sampler, EXACT))
            if exact is not None:
                ax.axhline(exact.mean.get(key), color=colour, linestyle="--", linewidth=1)
        ax.set_xticks(range(len(losses)), [loss_label(loss) for loss in losses])
        ax.set_title(panel)
        ax.set_yscale("log")
    legend_below(fig, axes)
    fig.suptitle(f"Figure 11{title}: sample quality per objective (bars: one standard error over sampler "
                 "seeds; dashed: the exact score)")
    return _save(fig, out, name)
