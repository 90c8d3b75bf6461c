"""The paper's Figures 1-3 and our Figure 4, drawn from a sweep's saved files only (metrics.csv,
summary.json, score_field.npz): nothing here trains or evaluates a model.

Colours are fixed across figures: ISM blue, DSM orange; each sigma has its own colour and dash
(sigma = 0 solid black; studies/plotting.py). A per-step trace of a long run is drawn as its running
median over 1/50 of the steps, with the raw trace faint behind it; panels that compare the same
quantity share their y-axis, and legends sit below the panels. Files are written as PNG and PDF without
timestamps, so a rebuild is byte-identical.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dsmexp.core.objectives.registry import OBJECTIVES  # noqa: E402
from dsmexp.records.sweeps import Run  # noqa: E402
from dsmexp.studies.plotting import (  # noqa: E402
    DSM_COLOUR,
    ISM_COLOUR,
    legend_below,
    loss_colour,
    loss_label,
    missing,
    running_median,
    sigma_style,
    smoothing_window,
)

PAPER_SIGMA = 0.01

plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8,
                     "axes.titlesize": 10, "axes.labelsize": 9, "svg.hashsalt": "dsmexp"})


def runs_of(runs: Iterable[Run], loss: str, sigma: float | None = None) -> list[Run]:
    """Runs trained with `loss` (at `sigma`, when given) that logged at least one step."""
    return [r for r in runs if r.loss == loss and (sigma is None or math.isclose(r.sigma, sigma))
            and len(r.metrics["step"])]


def seed_curve(chosen: list[Run], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, median, min, max) of a column over the runs of one grid point (one run per seed), on the
    steps every run logged."""
    length = min(len(r.metrics["step"]) for r in chosen)
    stack = np.stack([r.metrics[column][:length] for r in chosen])
    with np.errstate(all="ignore"):
        return (chosen[0].metrics["step"][:length], np.nanmedian(stack, 0), np.nanmin(stack, 0),
                np.nanmax(stack, 0))


def plot_seeds(ax, chosen: list[Run], column: str, smooth: bool = False, **line) -> None:
    """One line for a grid point: the run itself (one seed) or the median over seeds with a min-max band.

    With `smooth`, a long trace (smoothing_window > 1) is drawn as its running median, the raw trace faint
    behind it, and the band is the min-max over seeds of each seed's running median."""
    steps, median, low, high = seed_curve(chosen, column)
    window = smoothing_window(len(steps)) if smooth else 1
    if window > 1:
        ax.plot(steps, median, color=line.get("color"), lw=0.4, alpha=0.18, zorder=1)  # raw, faint
        smoothed = np.stack([running_median(r.metrics[column][:len(steps)], window) for r in chosen])
        with np.errstate(all="ignore"):
            median, low, high = (np.nanmedian(smoothed, 0), np.nanmin(smoothed, 0), np.nanmax(smoothed, 0))
        line = {"lw": 1.3, "zorder": 3, **line}
    ax.plot(steps, median, **line)
    if len(chosen) > 1:
        ax.fill_between(steps, low, high, color=line.get("color"), alpha=0.2, lw=0)


def smoothing_note(runs: list[Run]) -> str:
    """Figure-title suffix naming the running median's window (empty when traces are drawn raw)."""
    steps = max((len(r.metrics["step"]) for r in runs), default=0)
    window = smoothing_window(steps)
    return f"; lines: running median over {window} steps, raw trace faint" if window > 1 else ""


def by_sigma(chosen: list[Run]) -> dict[float, list[Run]]:
    """Runs grouped by noise scale (the seeds of one grid point together), sigma increasing."""
    groups: dict[float, list[Run]] = {}
    for run in chosen:
        groups.setdefault(run.sigma, []).append(run)
    return dict(sorted(groups.items()))


def seeds_note(runs: list[Run]) -> str:
    """Figure-title suffix saying how many seeds each line summarises (empty for one seed)."""
    seeds = {r.seed for r in runs}
    return f" — median over {len(seeds)} seeds, band: min-max" if len(seeds) > 1 else ""


def sigma_color(sigma: float, sigmas: list[float]) -> tuple:
    """One colour per noise scale, ordered by log sigma; sigma = 0 is black."""
    if sigma == 0:
        return (0.0, 0.0, 0.0, 1.0)
    logs = sorted({math.log10(s) for s in sigmas if s > 0})
    position = logs.index(math.log10(sigma)) / max(len(logs) - 1, 1)
    return plt.get_cmap("viridis")(0.1 + 0.8 * position)


def sigma_label(sigma: float) -> str:
    if sigma == 0:
        return "σ = 0"
    return f"σ = 1e{math.log10(sigma):.0f}" if _is_power(sigma) else f"σ = {sigma:g}"


def _is_power(sigma: float) -> bool:
    return abs(math.log10(sigma) - round(math.log10(sigma))) < 1e-9


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write name.png and name.pdf with no creation dates; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None, "Creator": None,
                                                         "Producer": None})
    plt.close(fig)
    return paths


def wrapped(title: str, width: int = 100) -> str:
    """A figure title broken into lines that fit the figure (long sweep notes ran off the image)."""
    return "\n".join(textwrap.wrap(title, width))


def plain_ticks(*axes) -> None:
    """Tick labels of log and symlog axes as plain numbers (0.5, 2, 300), not 5.12669x10^-2 or 1.5x10^0,
    which collide with each other and with the axis label."""
    for ax in axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_formatter(ticker.LogFormatter())
                axis.set_minor_formatter(ticker.LogFormatter(minor_thresholds=(1, 0.4)))
            elif scale == "symlog":
                axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
                axis.set_minor_formatter(ticker.NullFormatter())


def figure1(runs: list[Run], sigma: float = PAPER_SIGMA) -> Figure:
    """Fitting terms of ISM and DSM per step (with 2-SE bands), trained with DSM-S and with ISM."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, loss in zip(axes, ("dsm_s", "ism")):
        chosen = runs_of(runs, loss, sigma)
        if not chosen:
            missing(ax, f"{loss_label(loss)} run at {sigma_label(sigma)}")
            continue
        m = chosen[0].metrics
        for column, color, label in (("fit_dsm", DSM_COLOUR, "DSM fitting term <s, ε>/σ"),
                                     ("fit_ism", ISM_COLOUR, "ISM fitting term div s")):
            if len(chosen) > 1:
                plot_seeds(ax, chosen, column, color=color, lw=0.8, label=label)
                continue
            ax.plot(m["step"], m[column], color=color, lw=0.8, label=label)
            band = 2 * m[f"{column}_se"]
            ax.fill_between(m["step"], m[column] - band, m[column] + band, color=color, alpha=0.25, lw=0)
        ax.set(title=f"trained with {loss_label(loss)}, {sigma_label(sigma)}", xlabel="step",
               ylabel="fitting term" + (" (± 2 SE)" if len(chosen) == 1 else ""))
        ax.legend(loc="best")
    fig.suptitle(wrapped(f"Figure 1: ISM and DSM fitting terms per step at {sigma_label(sigma)} "
                         f"(Prop. 2: equal in expectation){seeds_note(runs)}"), fontsize=11)
    return fig


def figure2(runs: list[Run], losses: tuple[str, ...] = ("dsm_s", "ism")) -> Figure:
    """Top: the trained objective's fitting term per step, one line per sigma. Bottom: its gradient norm.
    Each row shares its y-axis, so the two objectives are read on one scale."""
    sigmas = sorted({r.sigma for r in runs})
    fig, axes = plt.subplots(2, len(losses), figsize=(5.5 * len(losses), 7), sharex="col", sharey="row",
                             squeeze=False)
    largest = max((np.nanmax(np.abs(r.metrics[OBJECTIVES[r.loss].fit_column])) for r in runs
                   if r.loss in losses and len(r.metrics["step"])), default=0.0)
    for col, loss in enumerate(losses):
        top, bottom = axes[0, col], axes[1, col]
        chosen = runs_of(runs, loss)
        if not chosen:
            missing(top, f"{loss_label(loss)} run")
            missing(bottom, f"{loss_label(loss)} run")
            continue
        for sigma, group in by_sigma(chosen).items():
            style = {**sigma_style(sigma, sigmas), "label": sigma_label(sigma)}
            plot_seeds(top, group, OBJECTIVES[loss].fit_column, smooth=True, **style)
            plot_seeds(bottom, group, OBJECTIVES[loss].grad_norm_column, smooth=True, **style)
        if largest > 10:  # DSM's fitting term grows like 1/sigma: symlog shows every sigma's scale
            top.set_yscale("symlog", linthresh=10)
        bottom.set_yscale("log")
        plain_ticks(top, bottom)
        top.set(title=f"{loss_label(loss)} training", ylabel="fitting term (fit_dsm, fit_ism)")
        bottom.set(xlabel="step", ylabel="gradient norm of the trained loss")
    legend_below(fig, axes, order=[sigma_label(s) for s in sigmas])
    fig.suptitle(wrapped("Figure 2: fitting term (top) and gradient norm (bottom) across noise scales"
                         + seeds_note(runs) + smoothing_note(runs)), fontsize=11)
    fig.tight_layout()
    return fig


def figure3(runs: list[Run], sigma: float = PAPER_SIGMA) -> Figure:
    """Learned and exact score fields, norm and fitting terms, ISM/DSM gradient cosine (ISM training)."""
    fig, grid = plt.subplots(2, 2, figsize=(13, 7.6), gridspec_kw={"height_ratios": [0.8, 1]})
    axes = grid.ravel()
    chosen = runs_of(runs, "ism", sigma)
    if not chosen:
        for ax in axes:
            missing(ax, f"ISM run at {sigma_label(sigma)}")
        return fig
    _score_fields(axes[:2], chosen[0])  # the first seed's field
    plot_seeds(axes[2], chosen, "fit_dsm", smooth=True, color=DSM_COLOUR, label="DSM fitting term")
    plot_seeds(axes[2], chosen, "fit_ism", color=ISM_COLOUR, lw=1.0, ls="--", label="ISM fitting term")
    plot_seeds(axes[2], chosen, "norm", color="black", lw=1.0, label="norm 0.5|s|² (shared)")
    axes[2].set(title=f"norm and fitting terms, ISM training, {sigma_label(sigma)}", xlabel="step")
    axes[2].legend(loc="best")
    plot_seeds(axes[3], chosen, "grad_cos", smooth=True, color="purple", label="cosine")
    median = float(np.median([np.nanmedian(r.metrics["grad_cos"]) for r in chosen]))
    axes[3].axhline(median, color="black", ls="--", lw=0.9, label=f"median {median:.3f}")
    axes[3].set(title="cosine of the ISM and DSM gradients", xlabel="step", ylabel="cosine",
                ylim=(-1.05, 1.05))
    axes[3].legend(loc="lower right")
    seeds = f" (field: seed {chosen[0].seed})" if len(chosen) > 1 else ""
    fig.suptitle(wrapped(f"Figure 3: score field (top){seeds}, loss terms and gradient agreement (bottom), "
                         f"ISM training at {sigma_label(sigma)}{seeds_note(chosen)}"
                         f"{smoothing_note(chosen)}"), fontsize=11)
    return fig


def _score_fields(axes, run: Run) -> None:
    """Streamlines of the learned and the exact score over the data, coloured by log10 |s|."""
    field = run.field()
    if field is None:
        for ax in axes:
            missing(ax, "score_field.npz")
        return
    gx, gy = field["grid_x"], field["grid_y"]
    magnitudes = [np.log10(np.linalg.norm(field[k], axis=-1) + 1e-12) for k in ("score", "reference")
                  if np.isfinite(field[k]).all()]
    norm = matplotlib.colors.Normalize(min(m.min() for m in magnitudes), max(m.max() for m in magnitudes))
    for ax, name, title in zip(axes, ("score", "reference"), ("learned score (ISM)", "exact score of q_σ")):
        ax.scatter(field["data"][:, 0], field["data"][:, 1], s=1.5, color="#999999", zorder=1)
        vec = field[name]
        if not np.isfinite(vec).all():
            ax.set_title(f"{title}: not available")
            continue
        colour = np.log10(np.linalg.norm(vec, axis=-1) + 1e-12)
        lines = ax.streamplot(gx, gy, vec[..., 0], vec[..., 1], color=colour, cmap="magma_r", norm=norm,
                              density=1.1, linewidth=0.8, arrowsize=0.8, zorder=2)
        ax.set(title=title, xlabel="x", ylabel="y", aspect="equal", xlim=(gx[0], gx[-1]),
               ylim=(gy[0], gy[-1]))
    axes[0].figure.colorbar(lines.lines, ax=list(axes), shrink=0.9, pad=0.02, label="log10 |score|")


def final_value(run: Run, column: str) -> float:
    """The last finite value of a column (evaluation columns are NaN between evaluations)."""
    values = run.metrics[column]
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else math.nan


def figure4(runs: list[Run], losses: tuple[str, ...] = ("dsm_s", "ism")) -> Figure:
    """Final esm_data (distance to the data score) and esm (to q_sigma's score) against sigma."""
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for loss in losses:
        groups = {s: g for s, g in by_sigma(runs_of(runs, loss)).items() if s > 0}
        clean = [final_value(r, "esm_data") for r in runs_of(runs, loss, 0.0)]
        if groups:
            sig = np.array(list(groups))
            for column, style, label in (("esm_data", "-o", "vs data score"),
                                         ("esm", "--^", "vs score of q_σ")):
                finals = [np.array([final_value(r, column) for r in g]) for g in groups.values()]
                median = np.array([np.nanmedian(v) for v in finals])
                spread = np.array([[median[i] - np.nanmin(v), np.nanmax(v) - median[i]]
                                   for i, v in enumerate(finals)]).T
                ax.errorbar(sig, median, yerr=spread if max(len(v) for v in finals) > 1 else None, fmt=style,
                            color=loss_colour(loss), mfc="none" if "^" in style else None, capsize=3,
                            label=f"{loss_label(loss)}: ESM {label}")
        if clean:
            ax.axhline(np.median(clean), color=loss_colour(loss), ls=":",
                       label=f"{loss_label(loss)} at σ = 0")
            if len(clean) > 1:
                ax.axhspan(min(clean), max(clean), color=loss_colour(loss), alpha=0.1, lw=0)
    if not ax.get_legend_handles_labels()[0]:
        missing(ax, f"{' or '.join(loss_label(loss) for loss in losses)} run")
        return fig
    plain_ticks(ax)
    ax.set(xscale="log", yscale="log", xlabel="noise scale σ", ylabel="ESM at the end of training",
           title="Figure 4: distance to the data score and to q_σ's score vs noise scale"
           + ("\n(median over seeds, bars: min-max)" if len({r.seed for r in runs}) > 1 else ""))
    legend_below(fig, [ax], columns=2)
    return fig
