"""The sampling study's report.md: the claims table (claims.py), the mode weights of the toy, the
quality table (every sampler x the exact score and each objective: the mean over the training seeds ±
its standard error over them; over the sampler seeds where one seed was trained), the diffusion-regime
and the paper's single-sigma runs, and Figures 10-11, from saved files only."""

from __future__ import annotations

from pathlib import Path

from dsmexp.studies.plotting import loss_label
from dsmexp.studies.sampling.claims import claims
from dsmexp.studies.sampling.figures import figure10, figure11
from dsmexp.studies.sampling.numbers import EXACT, STUDY_LOSSES, STUDY_SAMPLERS, Cell, Group, load_cells

QUALITY_KEYS = ("mmd2_h0.5", "mmd2_h1", "mmd2_h2", "w2", "w2_sliced", "energy", "ksd", "weight_0",
                "modes_covered")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def _pm(cell: Cell, key: str) -> str:
    mean, se = cell.mean.get(key), cell.se.get(key)
    if mean is None:
        return "-"
    return f"{mean:.3g}" + (f" ± {se:.2g}" if se is not None else "")


def _spread(runs: int) -> str:
    return (f"mean over {runs} training seeds ± its standard error" if runs > 1
            else "one training seed: mean ± standard error over the sampler seeds")


def _likelihood_table(likelihoods: dict[str, dict], title: dict[str, str]) -> list[str]:
    if not likelihoods:
        return []
    first = next(iter(likelihoods.values()))
    lines = [f"Probability-flow ODE log-likelihood of {first['points']} held-out data points at "
             f"sigma = {first['sigma_min']:g} (the first training seed's network), with the exact divergence "
             "(each network's by its kernel; the exact score's, the Laplacian of log q_sigma in closed form) "
             f"and the exact log q at sigma = {first['sigma_max']:g} (mean per point), against the exact "
             "log density of the same points; the exact score's gap is the ODE solver's own error:", ""]
    order = [c for c in (EXACT, *STUDY_LOSSES) if c in likelihoods]
    return lines + _table(["score", "ODE log-likelihood", "exact", "gap (exact - ODE)"],
                          [[title[c], f"{likelihoods[c]['pf_ode_loglik']:.4f}",
                            f"{likelihoods[c]['exact_loglik']:.4f}",
                            f"{likelihoods[c]['gap']:.4g} ± {likelihoods[c]['gap_se']:.2g}"] for c in order])


def _group_section(group: Group, cells: dict, esm: dict, likelihoods: dict, title: dict) -> list[str]:
    """A diffusion-regime group: MMD^2 and W2 per sampler and score, the distance at sigma_min."""
    columns = [EXACT, *(loss for loss in STUDY_LOSSES if loss in esm)]
    samplers = [s for s in STUDY_SAMPLERS if any((s, c) in cells for c in columns)]
    runs = max(c.runs for c in cells.values())
    lines = [f"## {group.title}", "",
             f"mmd2_h1 / w2 per sampler ({_spread(runs)}) and each network's final esm_rel at sigma_min "
             "(mean over the seeds):", ""]
    lines += _table(["score", "esm_rel at sigma_min", *samplers],
                    [[title[c], "-" if c == EXACT else f"{esm[c]:.4f}",
                      *(f"{_pm(cells[(s, c)], 'mmd2_h1')} / {_pm(cells[(s, c)], 'w2')}" if (s, c) in cells
                        else "-" for s in samplers)] for c in columns])
    return lines + _likelihood_table(likelihoods, title)


def _paper_section(group: Group, cells: dict, esm: dict, title: dict) -> list[str]:
    """The single-sigma runs: per sigma, each score's mmd2_h1 / w2 and each network's final esm_data."""
    rows = sorted({r for r, _ in cells}, key=lambda r: float(r.split("=")[1]))
    columns = [EXACT, *(loss for loss in STUDY_LOSSES if any(c == loss for _, c in cells))]
    runs = max(c.runs for c in cells.values())
    lines = [f"## {group.title}", "",
             f"mmd2_h1 / w2 of plain Langevin at each run's sigma ({_spread(runs)}), and in brackets each "
             "network's final esm_data (mean over the seeds):", ""]
    return lines + _table(["sigma", *(title[c] for c in columns)],
                          [[row.split("=")[1], *(f"{_pm(cells[(row, c)], 'mmd2_h1')} / "
                                                 f"{_pm(cells[(row, c)], 'w2')}"
                                                 + (f" [{esm[(row, c)]:.3g}]" if (row, c) in esm else "")
                                                 if (row, c) in cells else "-" for c in columns)]
                           for row in rows])


def report_text(toy: tuple, others: list[tuple], figures: list[str], preamble: list[str],
                paper: tuple | None = None) -> str:
    """toy: (cells, esm, likelihoods); others: (Group, cells, esm, likelihoods) per diffusion group;
    paper: (Group, cells, esm) of the single-sigma runs, or None."""
    cells, esm, likelihoods = toy
    columns = [EXACT, *(loss for loss in STUDY_LOSSES if loss in esm)]
    title = {EXACT: "exact score", **{loss: loss_label(loss) for loss in STUDY_LOSSES}}
    lines = ["# From scores to samples: the toy of Song & Ermon (2019), the diffusion-regime runs and the "
             "paper's single-sigma runs, exact and learned scores", "", *preamble, "", "## Claims", ""]
    judged = claims(cells, esm, [(g.title, c, e) for g, c, e, _ in others],
                    paper[1:] if paper is not None else None)
    lines += _table(["claim", "paper or seed says", "rule (fixed before the runs)", "numbers", "verdict"],
                    [[c.claim, c.source, c.rule, c.numbers, f"**{c.verdict}**" if c.verdict != "supported"
                      else c.verdict] for c in judged])
    runs = max(c.runs for c in cells.values())
    spread = _spread(runs)
    lines += ["## The toy: mode weights", "", f"Fraction of samples at the (5, 5) component (true 0.8), "
              f"{spread}:", ""]
    lines += _table(["sampler", *(title[c] for c in columns)],
                    [[s, *(_pm(cells[(s, c)], "weight_0") if (s, c) in cells else "-" for c in columns)]
                     for s in STUDY_SAMPLERS])
    lines += ["Final esm_rel at the smallest level (sigma = 1) of each objective's network (mean over the "
              "training seeds): " + ", ".join(
        f"{title[loss]} {esm[loss]:.4f}" for loss in columns[1:]), ""]
    lines += _likelihood_table(likelihoods, title)
    lines += ["## The toy: quality", "", f"Each number: {spread}.", ""]
    for sampler in STUDY_SAMPLERS:
        present = [c for c in columns if (sampler, c) in cells]
        if not present:
            continue
        lines += [f"**{sampler}**", ""]
        lines += _table(["score", *QUALITY_KEYS],
                        [[title[c], *(_pm(cells[(sampler, c)], k) for k in QUALITY_KEYS)] for c in present])
    for group, g_cells, g_esm, g_like in others:
        lines += _group_section(group, g_cells, g_esm, g_like, title)
    if paper is not None:
        lines += _paper_section(*paper, title)
    lines += ["## Figures", "", *(f"![{name}]({name}.png)" for name in figures), ""]
    return "\n".join(lines)


def build_report(toy: Group, others: list[Group], out: Path, preamble: list[str],
                 paper: Group | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cells, esm, likelihoods = load_cells(toy)
    figures = [figure10(cells, out), figure11(cells, out)] if cells else []
    loaded = []
    for group in others:
        g_cells, g_esm, g_like = load_cells(group)
        if not g_cells:
            continue
        name = group.title.split(" ")[0]
        figures += [figure10(g_cells, out, f"figure10_{name}", f" ({name})"),
                    figure11(g_cells, out, f"figure11_{name}", f" ({name})")]
        loaded.append((group, g_cells, g_esm, g_like))
    sampled = None
    if paper is not None:
        p_cells, p_esm, _ = load_cells(paper)
        if p_cells:
            figures += [figure10(p_cells, out, "figure10_paper", " (the paper's single-sigma runs)"),
                        figure11(p_cells, out, "figure11_paper", " (the paper's single-sigma runs)")]
            sampled = (paper, p_cells, p_esm)
    path = out / "report.md"
    path.write_text(report_text((cells, esm, likelihoods), loaded, figures, preamble, sampled))
    return path
