"""Figures 5-7 of the dimension study, drawn from the study's saved runs (dsmexp.dimension) only.

- Figure 5: milliseconds per step against d, one line per objective (log-log), with the interquartile
  range of the timed steps as bars (medians whose bars overlap are timing noise, not a difference), and
  the exact trace's cost against the network's width next to SSM-VR's;
- Figure 6: esm_data_rel against wall-clock seconds of training, one panel per d, one line per objective,
  with the common time budget of the verdict marked;
- Figure 7: per-point variance of each fitting-term estimator against d, next to the exact trace
  (the analogue of the paper's variance against sigma).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from dsmexp.core.objectives.registry import OBJECTIVES
from dsmexp.studies.dimension.numbers import STUDY_LOSSES, StudyRun, Timing, Verdict
from dsmexp.studies.plotting import legend_below, loss_colour, loss_marker, loss_title, missing

Study = dict[tuple[str, int], StudyRun]


def _by_loss(study: Study) -> dict[str, list[StudyRun]]:
    out: dict[str, list[StudyRun]] = {}
    for loss in STUDY_LOSSES:
        runs = sorted((r for (name, _), r in study.items() if name == loss), key=lambda r: r.dim)
        if runs:
            out[loss] = runs
    return out


def _label(run: StudyRun) -> str:
    """The objective's name, with its noise scale for one that needs noise (DSM-S)."""
    name = loss_title(run.loss)
    return f"{name} (σ = {run.run.sigma:g})" if OBJECTIVES[run.loss].needs_noise else name


def _dim_axis(ax, dims: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims)
    ax.set_xticklabels([str(d) for d in dims])
    ax.minorticks_off()


def figure5(study: Study, timing: Timing | None) -> Figure:
    """Left: ms per step against d, trained objective alone. Right: the exact trace against width."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    dims = sorted({d for _, d in study})
    bars = False
    for loss, runs in _by_loss(study).items():
        if timing is not None and loss in timing.by_d:
            points = sorted(timing.by_d[loss].items())
        else:
            points = [(r.dim, r.ms_per_step) for r in runs]
        x, y = (np.array(v, dtype=float) for v in zip(*points))
        quartiles = timing.by_d_iqr.get(loss, {}) if timing is not None else {}
        spread = None
        if all(int(d) in quartiles for d in x):
            q = np.array([quartiles[int(d)] for d in x])
            spread, bars = np.abs(np.stack([y - q[:, 0], q[:, 1] - y])), True
        left.errorbar(x, y, yerr=spread, marker=loss_marker(loss), color=loss_colour(loss), capsize=3,
                      label=_label(runs[0]))
    left.set_yscale("log")
    _dim_axis(left, dims)
    source = "one process, interleaved" if timing is not None else "median step of each run"
    left.set(xlabel="dimension d", ylabel="ms per step (median" + (", bars: quartiles)" if bars else ")"),
             title=f"cost per step, trained objective alone ({source})")
    if timing is None or not timing.by_width:
        missing(right, "width timing")
    else:
        for loss, row in timing.by_width.items():
            widths = sorted(row, key=lambda w: int(w.split("-")[0]))
            right.plot(range(len(widths)), [row[w] for w in widths], marker=loss_marker(loss),
                       color=loss_colour(loss), label=loss_title(loss))
            right.set_xticks(range(len(widths)))
            right.set_xticklabels(widths)
        right.set(yscale="log", xlabel="hidden widths (2 tanh layers)", ylabel="ms per step (median)",
                  title=f"exact trace against width, d = {timing.width_dim}")
    legend_below(fig, [left, right], columns=3)
    note = "; where the quartile bars of two points overlap, their difference is timing noise" if bars else ""
    fig.suptitle(f"Figure 5: what a training step costs as the dimension and the network grow{note}",
                 fontsize=11)
    return fig


def figure6(study: Study) -> Figure:
    """esm_data_rel against wall-clock seconds, one panel per d; the verdict's budget dashed."""
    dims = sorted({d for _, d in study})
    cols = min(len(dims), 3)
    rows = math.ceil(len(dims) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, dim in zip(axes.ravel(), dims):
        for loss in STUDY_LOSSES:
            run = study.get((loss, dim))
            if run is None or not len(run.eval_time):
                continue
            ax.plot(run.eval_time, run.eval_rel, color=loss_colour(loss), lw=1.0, label=_label(run))
        ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="s = 0")
        verdict = Verdict.at(study, dim)
        if verdict is not None and math.isfinite(verdict.budget):
            ax.axvline(verdict.budget, color="black", ls="--", lw=0.8, label="common budget")
        ax.set(xscale="log", title=f"d = {dim}", xlabel="wall-clock seconds of training",
               ylabel="esm_data_rel (held out)")
    for ax in axes.ravel()[len(dims):]:
        ax.set_axis_off()
    fig.suptitle("Figure 6: distance to the data score against training time", fontsize=11)
    fig.tight_layout()
    legend_below(fig, axes, columns=4)
    return fig


def figure7(study: Study, timing: Timing | None = None) -> Figure:
    """Left: per-point variance of each objective's fitting term against d, with the exact trace div s.
    Right: that variance over the exact trace's on the same points and network (timing.json)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    dims = sorted({d for _, d in study})
    same = timing.variance if timing is not None else {}
    for loss, runs in _by_loss(study).items():
        if same.get(loss):
            points = sorted((d, v["estimator"]) for d, v in same[loss].items())
        else:
            points = [(r.dim, r.variance) for r in runs if np.isfinite(r.variance) and r.variance > 0]
        if not points:
            continue
        style = dict(color="black", ls="--", lw=1.4) if loss == "ism" else dict(color=loss_colour(loss))
        label = "exact trace div s (ISM)" if loss == "ism" else _label(runs[0])
        left.plot(*zip(*points), marker=loss_marker(loss), label=label, **style)
        if same.get(loss) and loss != "ism":
            ratio = sorted((d, v["estimator"] / v["exact"]) for d, v in same[loss].items())
            right.plot(*zip(*ratio), marker=loss_marker(loss), color=loss_colour(loss), label=_label(runs[0]))
    where = "each run's final network" if same else "median over the second half of training"
    left.set(yscale="log", xlabel="dimension d", ylabel="per-point variance of the fitting term",
             title=f"fitting-term variance ({where})")
    _dim_axis(left, dims)
    if same:
        right.axhline(1.0, color="black", ls="--", lw=1.0, label="exact trace")
        right.set(yscale="log", xlabel="dimension d", ylabel="variance / exact trace's, same z",
                  title="noise the estimator adds to the exact trace")
        _dim_axis(right, dims)
    else:
        missing(right, "same-points variance (timing.json)")
    legend_below(fig, [left, right], columns=3)
    fig.suptitle("Figure 7: estimator variance against dimension", fontsize=11)
    return fig
