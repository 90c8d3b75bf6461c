"""The noise-kernel study's report.md (claims.py, figures.py), from the saved runs of each kernel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmexp.records.sweeps import Run, load_runs
from dsmexp.studies.kernels import claims as kc
from dsmexp.studies.kernels.figures import figure14
from dsmexp.studies.markdown import smoke_caveat
from dsmexp.studies.paper.claims import evaluate_claims
from dsmexp.studies.seed_claims import claims_table
from dsmexp.train.summary import source_commit

SIGMAS = (1e-4, 1e-3, 1e-2, 1e-1)


def _noise(runs: list[Run]) -> dict:
    return next((r.config.get("noise") or {} for r in runs), {})


def _cell(values: list[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def build_report(sweeps: dict[str, Path], out: Path, preamble: list[str], seeds: int | None = None) -> Path:
    """report.md and Figure 14 from each kernel's sweep; `seeds`: judge seeds 0..seeds-1 only (the
    Gaussian sweep is the paper study's own, which `make results` also fills with five seeds)."""
    runs = {label: [r for r in (load_runs(p) if p.is_dir() else []) if seeds is None or r.seed < seeds]
            for label, p in sweeps.items()}
    # each kernel in words (student_t (df 3)) with its runs' noise settings; a sweep with no runs by name
    kernels = {(kc.kernel_label(_noise(rs)) if rs else label): (_noise(rs), rs) for label, rs in runs.items()}
    out.mkdir(parents=True, exist_ok=True)
    figure14(kernels, out)
    claims = []
    for label, (noise, rs) in kernels.items():
        claims += [kc.prop2_claim(label, rs), kc.fisher_claim(label, noise, rs)]
    gaussian = runs.get("gaussian", [])
    for label, (noise, rs) in kernels.items():
        if noise.get("kernel", "gaussian") != "gaussian":
            claims.append(kc.heavier_claim(label, rs, gaussian))
    every = [r for rs in runs.values() for r in rs]
    commits = ", ".join(f"`{c}`" for c in sorted({str(r.summary.get("commit")) for r in every})) or "none"
    lines = ["# DSM under other noise kernels: Prop. 2, the fitting term's variance, the paper's claims", "",
             *smoke_caveat(r.config.get("profile_name", "default") for r in every),
             "Regenerate: `make kernels` (`python scripts/results.py --only kernels`); report drawn at "
             f"commit `{source_commit()}`, runs trained at {commits}.", "",
             *preamble, "", "## Claims", "", *claims_table(claims)]
    lines += ["", "Verdicts per seed: supported when every seed satisfies the rule, not supported when none "
              "does, mixed otherwise, inconclusive when a run it needs is missing.", "",
              "## DSM's normalised fitting-term variance (sigma^2 Var / mean |s|^2; mean [min, max] over the "
              "seeds)", "",
              "| kernel | predicted at small sigma | " + " | ".join(f"sigma = {s:g}" for s in SIGMAS) + " |",
              "|---|---|" + "---|" * len(SIGMAS)]
    for label, (noise, rs) in kernels.items():
        dim = int(next((r.config["dataset"].get("dim", 2) for r in rs), 2))
        cells = [_cell([kc.normalised_variance(r) for r in rs if r.loss == "dsm_s" and float(r.sigma) == s
                        and r.status == "completed"]) for s in SIGMAS]
        lines.append(f"| {label} | {kc.fisher_information(noise, dim):.4g} | " + " | ".join(cells) + " |")
    lines += ["", f"The prediction holds where the O(1) remainder is negligible (sigma in "
              f"{', '.join(f'{s:g}' for s in kc.SMALL)}); at 1e-2 and 1e-1 the network's change across the "
              "kernel's spread adds to it.", "", "## The paper's claims under each kernel", "",
              "Each kernel's full paper report (Figures 1-4, its claims, rules and runs) is in its folder: "
              + ", ".join(f"[{label}]({label}/report.md)" for label in sweeps) + ".", ""]
    verdicts = {label: evaluate_claims(rs) for label, (_, rs) in kernels.items() if rs}
    if verdicts:
        names = list(verdicts)
        lines += ["| paper claim | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for i, claim in enumerate(next(iter(verdicts.values()))):
            lines.append(f"| {claim.rule.claim} | " + " | ".join(
                f"{verdicts[n][i].verdict} ({verdicts[n][i].tally})" for n in names) + " |")
    lines += ["", "## Figures", "", "![Figure 14](figure14.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
