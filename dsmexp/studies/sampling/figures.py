"""Figures 10 and 11 of the sampling study, from numbers.load_cells only.

Figure 10: a grid of scatter plots, rows the samplers (or, for the paper's single-sigma runs, the noise
scales), columns the exact score then each objective (the first training seed's first sampler seed; the
fresh data sample in grey). Figure 11: the samples' MMD^2 and mode-weight error (or exact W2) per
objective, one line per row, the band the min-max over the training seeds, bars one standard error (over
the training seeds; over the sampler seeds where one seed was trained), the exact score dashed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from dsmexp.studies.plotting import legend_below, loss_label
from dsmexp.studies.sampling.numbers import EXACT, STUDY_LOSSES, STUDY_SAMPLERS, Cell

SAMPLER_COLOURS = {"langevin": "#000000", "annealed_langevin": "#E69F00", "reverse_sde": "#56B4E9",
                   "pf_ode": "#009E73", "pc": "#CC79A7"}


def _rows(cells: dict[tuple[str, str], Cell]) -> list[str]:
    """The samplers in their order, or the sigma rows (sigma=...) by noise scale."""
    present = {r for r, _ in cells}
    if present <= set(STUDY_SAMPLERS):
        return [r for r in STUDY_SAMPLERS if r in present]
    return sorted(present, key=lambda r: float(r.split("=")[1]))


def _colour(row: str, rows: list[str]) -> str:
    if row in SAMPLER_COLOURS:
        return SAMPLER_COLOURS[row]
    return plt.get_cmap("viridis")(rows.index(row) / max(len(rows) - 1, 1))


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
    rows = _rows(cells)
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)),
                             sharex=True, sharey=True, squeeze=False)
    window = _limits(cells)
    for i, sampler in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            cell = cells.get((sampler, column))
            if cell is not None:
                ax.scatter(*cell.data[:1000].T, s=1, c="0.8", rasterized=True)
                ax.scatter(*cell.samples[:1000].T, s=1, color=_colour(sampler, rows), rasterized=True)
                if "weight_0" in cell.mean:
                    ax.set_title(f"w(5,5) = {cell.mean['weight_0']:.2f}", fontsize=8)
                else:
                    ax.set_title(f"MMD^2 = {cell.mean.get('mmd2_h1', float('nan')):.2g}", fontsize=8)
            ax.set_xlim(*window)
            ax.set_ylim(*window)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_xlabel("exact score" if column == EXACT else loss_label(column), fontsize=9)
                ax.xaxis.set_label_position("top")
            if j == 0:
                ax.set_ylabel(sampler, fontsize=9)
    fig.suptitle(f"Figure 10{title}: samples (first training and sampler seed) from the exact and the "
                 "learned scores; data in grey")
    return _save(fig, out, name)


def figure11(cells: dict[tuple[str, str], Cell], out: Path, name: str = "figure11", title: str = "") -> str:
    losses = [loss for loss in STUDY_LOSSES if any(c == loss for _, c in cells)]
    rows = _rows(cells)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    mixture = any("weight_error" in c.mean for c in cells.values())
    second = ("weight_error", "largest mode-weight error") if mixture else ("w2", "exact W2")
    trained = max(c.runs for c in cells.values())
    for ax, key, panel in ((axes[0], "mmd2_h1", "MMD^2 (median-heuristic bandwidth)"), (axes[1], *second)):
        for row in rows:
            points = [(k, cells[(row, loss)]) for k, loss in enumerate(losses) if (row, loss) in cells]
            if not points:
                continue
            colour, xs = _colour(row, rows), [k for k, _ in points]
            ax.errorbar(xs, [c.mean.get(key) for _, c in points],
                        yerr=[c.se.get(key) or 0 for _, c in points], color=colour, marker="o", capsize=3,
                        label=row)
            if trained > 1:
                ax.fill_between(xs, [c.lo.get(key) for _, c in points], [c.hi.get(key) for _, c in points],
                                color=colour, alpha=0.15, linewidth=0)
            exact = cells.get((row, EXACT))
            if exact is not None:
                ax.axhline(exact.mean.get(key), color=colour, linestyle="--", linewidth=1)
        ax.set_xticks(range(len(losses)), [loss_label(loss) for loss in losses])
        ax.set_title(panel)
        ax.set_yscale("log")
    legend_below(fig, axes)
    spread = (f"bands: min-max over {trained} training seeds; bars: one standard error over them"
              if trained > 1 else "bars: one standard error over sampler seeds")
    fig.suptitle(f"Figure 11{title}: sample quality per objective ({spread}; dashed: the exact score)")
    return _save(fig, out, name)
