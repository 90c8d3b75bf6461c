"""The variance study's report.md: the claims table, the variance and fit table per sigma, Figures 12-13,
from the saved files only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmexp.studies.seed_claims import claims_table
from dsmexp.studies.variance.claims import claims
from dsmexp.studies.variance.figures import figure12, figure13
from dsmexp.studies.variance.numbers import LABELS, SIGMAS, VARIANTS, StudyRun, load_study, table


def _cell(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    if not np.isfinite(v).any():
        return "-"
    return f"{np.nanmean(v):.3g} [{np.nanmin(v):.3g}, {np.nanmax(v):.3g}]"


def report_text(runs: list[StudyRun], figures: list[str], preamble: list[str]) -> str:
    lines = ["# Taming DSM at small sigma: control variates, antithetic noise and target score matching, "
             "measured by the gradient's variance", "", *preamble, "", "## Claims", "",
             *claims_table(claims(runs), "paper or issue says")]
    for title, column, how in (
            ("Gradient variance", "grad_var", lambda r: r.late("grad_var")),
            ("Exact ISM gradient's variance on the same z", "grad_var_ism", lambda r: r.late("grad_var_ism")),
            ("Final esm_data", "esm_data", lambda r: r.final("esm_data"))):
        values = table(runs, how)
        lines += ["", f"## {title} (`{column}`; mean [min, max] over the seeds)", "",
                  "| variant | " + " | ".join(f"sigma = {s:g}" for s in SIGMAS) + " |",
                  "|---|" + "---|" * len(SIGMAS)]
        for name in VARIANTS:
            lines.append(f"| {LABELS[name]} | " + " | ".join(_cell(values.get((name, s), [])) for s in SIGMAS)
                         + " |")
    lines += ["", "## Figures", "", *(f"![{name}]({name}.png)" for name in figures), ""]
    return "\n".join(lines)


def build_report(sweep_dir: Path, out: Path, preamble: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    runs = load_study(sweep_dir)
    figures = [figure12(runs, out), figure13(runs, out)] if runs else []
    path = out / "report.md"
    path.write_text(report_text(runs, figures, preamble))
    return path
