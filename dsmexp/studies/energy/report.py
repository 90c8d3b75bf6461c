"""The energy study's Figure 15 and report.md, from its sweep directory only (claims.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from dsmexp.records.sweeps import Run, load_runs
from dsmexp.studies.energy.claims import LOSSES, SIGMAS, all_claims, final, parametrization, step_seconds
from dsmexp.studies.markdown import smoke_caveat
from dsmexp.studies.plotting import legend_below
from dsmexp.studies.seed_claims import claims_table

STYLE = {("score", "ism"): ("#1f77b4", "-"), ("score", "dsm_s"): ("#ff7f0e", "-"),
         ("energy", "ism"): ("#1f77b4", "--"), ("energy", "dsm_s"): ("#ff7f0e", "--")}
LABEL = {"score": "free-form score", "energy": "energy", "ism": "ISM", "dsm_s": "DSM-S"}


def _curve(runs: list[Run], column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The column's evaluated steps and its mean over the runs (which share their eval steps)."""
    rows = []
    for r in runs:
        values = r.metrics[column]
        keep = np.isfinite(values)
        rows.append((r.metrics["step"][keep], values[keep]))
    if not rows or not len(rows[0][0]):
        return None
    size = min(len(v) for _, v in rows)
    return rows[0][0][:size], np.mean([v[:size] for _, v in rows], 0)


def figure15(runs: list[Run], out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    done = [r for r in runs if r.status == "completed"]
    for (kind, loss), (colour, line) in STYLE.items():
        for col, column in ((0, "esm"), (1, "esm"), (2, "kl")):
            if column == "kl" and kind == "score":
                continue
            sigma = SIGMAS[col] if col < 2 else 0.1
            group = [r for r in done
                     if parametrization(r) == kind and r.loss == loss and float(r.sigma) == sigma]
            curve = _curve(group, column)
            if curve is not None:
                axes[col].plot(*curve, color=colour, linestyle=line, label=f"{LABEL[kind]}, {LABEL[loss]}")
    titles = ("esm at sigma = 0.01", "esm at sigma = 0.1", "KL(q_sigma || p_model), sigma = 0.1")
    for ax, title in zip(axes, titles):
        ax.set(title=title, xlabel="step")
        ax.set_yscale("log")
    legend_below(fig, list(axes), columns=4)
    fig.suptitle("Figure 15: free-form and energy-parametrised scores (mean over the seeds)", fontsize=11)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"figure15.{ext}", dpi=150, bbox_inches="tight")
    plt.close(fig)


def _cell(values: list[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    return f"{np.mean(values):.3g} [{min(values):.3g}, {max(values):.3g}]" if values else "-"


def build_report(sweep_dir: Path, out: Path, preamble: list[str]) -> Path:
    runs = load_runs(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure15(runs, out)
    lines = ["# Energy against score parametrisation: conservative fields, likelihoods, cost", "",
             *smoke_caveat(r.config.get("profile_name", "default") for r in runs), *preamble, "",
             "## Claims", "", *claims_table(all_claims(runs))]
    lines += ["", "Verdicts per seed: supported when every seed satisfies the rule, not supported when none "
              "does, mixed otherwise, inconclusive when a run it needs is missing.", "",
              "## Final values (mean [min, max] over the seeds)", "",
              "| model | loss | sigma | esm | curl | loglik | kl | step (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    done = [r for r in runs if r.status == "completed"]
    for kind in ("score", "energy"):
        for loss in LOSSES:
            for sigma in SIGMAS:
                group = [r for r in done if parametrization(r) == kind and r.loss == loss
                         and float(r.sigma) == sigma]
                cells = [_cell([final(r, c) for r in group]) for c in ("esm", "curl", "loglik", "kl")]
                cells.append(_cell([1e3 * step_seconds(r) for r in group]))
                lines.append(f"| {LABEL[kind]} | {LABEL[loss]} | {sigma:g} | " + " | ".join(cells) + " |")
    lines += ["", "loglik and kl normalise exp(-E) on a 256 x 256 grid reaching 25% beyond the held-out "
              "points on each side (dsmexp/core/energy.py); mass outside it is left out, so loglik errs "
              "high and kl low by that mass. A free-form field has no normaliser: its loglik and kl are "
              "NaN.", "", "## Figures", "", "![Figure 15](figure15.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
