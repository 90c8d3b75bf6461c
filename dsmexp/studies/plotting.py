"""What every study's figures share: the colour, label and marker of each objective (its registry row,
dsmexp/core/objectives/registry.py), one colour and dash per noise scale, the running median that keeps
a noisy per-step trace readable, the legend drawn below the panels (never over the data), and the note
drawn on a panel whose runs the sweep lacks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dsmexp.core.objectives.registry import DSM_COLOUR, ISM_COLOUR, OBJECTIVES
from dsmexp.core.objectives.registry import title as loss_title

__all__ = ["DSM_COLOUR", "ISM_COLOUR", "legend_below", "loss_colour", "loss_label", "loss_marker",
           "loss_title", "missing", "running_median", "sigma_style", "smoothing_window"]

# sigma = 0 is black; noisy scales, smallest first, take colours of the Okabe-Ito palette (told apart
# also in colour-blind vision, and none is ISM's blue or DSM's orange) and a dash each, so lines that
# coincide (ISM at sigma = 0, 1e-4 and 1e-3) still show which is which
SIGMA_COLOURS = ("#D55E00", "#CC79A7", "#009E73", "#56B4E9", "#999933", "#882255", "#117733", "#332288")
SIGMA_DASHES = ("--", "-.", (0, (1, 1.2)), "-", (0, (5, 1, 1, 1, 1, 1)))
SMOOTH_POINTS = 50  # a running median over 1/50 of the steps: 101 steps of a 5000-step run


def loss_colour(loss: str) -> str:
    return OBJECTIVES[loss].colour if loss in OBJECTIVES else "k"


def loss_label(loss: str) -> str:
    return OBJECTIVES[loss].label if loss in OBJECTIVES else loss


def loss_marker(loss: str) -> str:
    return OBJECTIVES[loss].marker if loss in OBJECTIVES else "o"


def sigma_style(sigma: float, sigmas: list[float]) -> dict:
    """Line colour and dash of one noise scale among `sigmas`: sigma = 0 solid black, the others by rank.
    Solid lines are drawn wider and beneath the dashed ones, so lines that coincide all show."""
    if sigma == 0:
        return {"color": "black", "ls": "-", "lw": 2.2, "zorder": 2}
    rank = sorted({s for s in sigmas if s > 0}).index(sigma)
    dash = SIGMA_DASHES[rank % len(SIGMA_DASHES)]
    return {"color": SIGMA_COLOURS[rank % len(SIGMA_COLOURS)], "ls": dash,
            **({"lw": 2.2, "zorder": 2} if dash == "-" else {"lw": 1.4, "zorder": 3})}


def smoothing_window(steps: int) -> int:
    """The running median's window for a trace of `steps` points: odd, 1 (no smoothing) below 150 steps."""
    window = steps // SMOOTH_POINTS
    return window + 1 - window % 2 if window >= 3 else 1


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """The centred running median of a per-step trace (NaN-aware, shorter windows at the ends)."""
    if window <= 1:
        return np.asarray(values, dtype=float)
    series = pd.Series(np.asarray(values, dtype=float))
    return series.rolling(window, center=True, min_periods=1).median().to_numpy()


def legend_below(fig, axes, columns: int | None = None, order: list[str] | None = None) -> None:
    """One legend for `axes` (their labels, each once, in `order` or as first drawn) under the figure, where
    it covers no data."""
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles and not label.startswith("_"):
                handles[label] = handle
                labels.append(label)
    if order is not None:
        labels = [k for k in order if k in handles] + [k for k in labels if k not in order]
    if labels:
        columns = columns or min(len(labels), 6)
        fig.legend([handles[k] for k in labels], labels, loc="upper center", ncol=columns, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))


def missing(ax, what: str) -> None:
    """Say on an empty panel which runs it needs."""
    ax.text(0.5, 0.5, f"no {what} in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()

