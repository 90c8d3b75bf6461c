"""Figures 8 and 9 of the multi-scale study, from its saved files only (numbers.py).

- Figure 8: the final distance to the exact score of q_sigma at each level (esm_rel, held out) against
  sigma, one line per objective (median over seeds, band: min-max), one panel per data and schedule;
- Figure 9: per level, the per-point variance of DSM's and ISM's fitting terms on the same z (the
  paper's variance result across a schedule; DSM runs), and the gradient norm of each trained objective
  at its final network (measure.json).
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from dsmexp.studies.multiscale.numbers import STUDY_LOSSES, StudyRun, groups, runs_of
from dsmexp.studies.paper.figures import plain_ticks, wrapped
from dsmexp.studies.plotting import legend_below, loss_colour, loss_marker, loss_title, missing


def _band(ax, sigmas: np.ndarray, values: list[np.ndarray], **line) -> None:
    stack = np.stack(values)
    with np.errstate(all="ignore"):
        ax.plot(sigmas, np.nanmedian(stack, 0), **line)
        if len(values) > 1:
            ax.fill_between(
                sigmas, np.nanmin(stack, 0), np.nanmax(stack, 0), color=line.get("color"), alpha=0.15, lw=0
            )


def figure8(study: list[StudyRun]) -> Figure:
    keys = groups(study)
    cols = 2
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.6 * rows), squeeze=False)
    for ax, group in zip(axes.ravel(), keys):
        for loss in STUDY_LOSSES:
            runs = runs_of(study, group, loss)
            if runs:
                _band(
                    ax,
                    runs[0].sigmas,
                    [r.final("esm_rel") for r in runs],
                    color=loss_colour(loss),
                    marker=loss_marker(loss),
                    ms=4,
                    lw=1.2,
                    label=loss_title(loss),
                )
        ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="s = 0")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="noise level σ",
            ylabel="final esm_rel at that level",
            title=f"{group[0]}, {group[1]}",
        )
        plain_ticks(ax)
    for ax in axes.ravel()[len(keys) :]:
        ax.set_axis_off()
    if not keys:
        missing(axes[0, 0], "multi-scale run")
    fig.suptitle(
        wrapped(
            "Figure 8: distance to the exact score of q_σ at each level at the end of training "
            "(relative; median over seeds, band: min-max)"
        ),
        fontsize=11,
    )
    fig.tight_layout()
    legend_below(fig, axes, columns=6)
    return fig


def figure9(study: list[StudyRun]) -> Figure:
    keys = [g for g in groups(study) if runs_of(study, g, "dsm")]
    fig, axes = plt.subplots(2, max(len(keys), 1), figsize=(4.2 * max(len(keys), 1), 7.2), squeeze=False)
    for col, group in enumerate(keys):
        top, bottom = axes[0, col], axes[1, col]
        dsm = runs_of(study, group, "dsm")
        sig = dsm[0].sigmas
        _band(
            top,
            sig,
            [r.variance("fit_dsm") for r in dsm],
            color=loss_colour("dsm"),
            marker="v",
            ms=4,
            label="DSM term <s, ε>/σ",
        )
        _band(
            top,
            sig,
            [r.variance("fit_ism") for r in dsm],
            color=loss_colour("ism"),
            marker="o",
            ms=4,
            label="ISM term div s",
        )
        top.set(
            xscale="log",
            yscale="log",
            title=f"{group[0]}, {group[1]}",
            xlabel="noise level σ",
            ylabel="per-point variance (DSM runs)",
        )
        for loss in STUDY_LOSSES:
            runs = [r for r in runs_of(study, group, loss) if len(r.gradients) == len(sig)]
            if runs:
                _band(
                    bottom,
                    sig,
                    [np.array(r.gradients) for r in runs],
                    color=loss_colour(loss),
                    marker=loss_marker(loss),
                    ms=4,
                    label=loss_title(loss),
                )
        bottom.set(
            xscale="log", yscale="log", xlabel="noise level σ", ylabel="gradient norm at the final network"
        )
        plain_ticks(top, bottom)
    if not keys:
        missing(axes[0, 0], "DSM multi-scale run")
        missing(axes[1, 0], "DSM multi-scale run")
    fig.suptitle(
        wrapped(
            "Figure 9: per level, the per-point variance of the two fitting terms on the same z "
            "(top) and each objective's weighted gradient norm at its final network (bottom)"
        ),
        fontsize=11,
    )
    fig.tight_layout()
    legend_below(fig, axes, columns=7)
    return fig
