"""The sampling study's claims and their rules, fixed before any quick run (the toy of Song & Ermon
2019, Sec. 3.2.2 and Figure 3: the mixture 0.8 N((5, 5), I) + 0.2 N((-5, -5), I)).

Verdicts: supported, not supported, or inconclusive when a number it needs is missing. Changing a
threshold after seeing numbers must be said in the report with the old and the new verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from dsmexp.studies.sampling.numbers import EXACT, STUDY_LOSSES, Cell

TRUE_WEIGHT = 0.8  # the (5, 5) component
RECOVERED = 0.05  # "recovers the weights": |weight_0 - 0.8| at most this (mean over sampler seeds)
WRONG = 0.15  # "does not": |weight_0 - 0.8| at least this
ANNEALED = ("annealed_langevin", "reverse_sde", "pf_ode", "pc")
QUALITY = "mmd2_h1"  # the quality number the rankings use (unbiased MMD^2, median-heuristic bandwidth)


@dataclass
class Claim:
    claim: str
    source: str
    rule: str
    numbers: str
    verdict: str


def _verdict(ok: bool | None) -> str:
    return "inconclusive" if ok is None else ("supported" if ok else "not supported")


def weights_claim(cells: dict[tuple[str, str], Cell]) -> Claim:
    annealed, plain = cells.get(("annealed_langevin", EXACT)), cells.get(("langevin", EXACT))
    ok, numbers = None, "missing samples"
    if annealed and plain:
        a, p = annealed.mean["weight_0"], plain.mean["weight_0"]
        ok = abs(a - TRUE_WEIGHT) <= RECOVERED and abs(p - TRUE_WEIGHT) >= WRONG
        numbers = (f"weight of (5, 5): annealed {a:.3f} ± {annealed.se['weight_0']:.3f}, plain {p:.3f} ± "
                   f"{plain.se['weight_0']:.3f} (true 0.8)")
    return Claim("annealed Langevin recovers the mixture weights where plain Langevin does not (exact "
                 "score)", "Song & Ermon 2019, Sec. 3.2.2, Fig. 3: Langevin dynamics cannot recover the "
                 "relative weights; annealed Langevin does",
                 f"exact score, mean over sampler seeds: |w_(5,5) - 0.8| <= {RECOVERED} annealed, >= {WRONG} "
                 "plain", numbers, _verdict(ok))


def ranking_claim(cells: dict[tuple[str, str], Cell], esm: dict[str, float], where: str = "") -> Claim:
    """Per annealed sampler: the Spearman correlation over the objectives between the final esm_rel at
    the smallest level and the samples' MMD^2 is positive; supported when it is for every sampler."""
    parts, oks = [], []
    for sampler in ANNEALED:
        losses = [loss for loss in STUDY_LOSSES if (sampler, loss) in cells and loss in esm]
        if len(losses) < 3:
            continue
        quality = [cells[(sampler, loss)].mean[QUALITY] for loss in losses]
        rho = spearmanr([esm[loss] for loss in losses], quality)
        value = float(rho.statistic)
        oks.append(bool(np.isfinite(value) and value > 0))
        parts.append(f"{sampler}: rho = {value:.2f}")
    return Claim("the objective with the lower exact Fisher divergence at the smallest levels gives the "
                 f"better samples{where}",
                 "the issue's question: does the better objective give better samples?",
                 f"for each of {', '.join(ANNEALED)}: Spearman rho over the objectives between the final "
                 f"esm_rel at sigma_min and {QUALITY} > 0",
                 "; ".join(parts) or "missing samples", _verdict(all(oks) if oks else None))


def exact_bound_claim(cells: dict[tuple[str, str], Cell]) -> Claim:
    """The exact score bounds what the sampler can do: every learned score's MMD^2 is at least the exact
    score's with the same sampler, minus two combined standard errors."""
    worse, total, failing = 0, 0, []
    for (sampler, column), cell in cells.items():
        exact = cells.get((sampler, EXACT))
        if column == EXACT or exact is None:
            continue
        total += 1
        slack = 2 * float(np.hypot(cell.se.get(QUALITY) or 0, exact.se.get(QUALITY) or 0))
        if cell.mean[QUALITY] >= exact.mean[QUALITY] - slack:
            worse += 1
        else:
            failing.append(f"{sampler}/{column}")
    ok = None if total == 0 else worse == total
    return Claim("a learned score never samples better than the exact score with the same sampler",
                 "the control the exact score gives: the sampler's own error is what remains with it",
                 f"{QUALITY}(learned) >= {QUALITY}(exact) - 2 combined standard errors, every sampler and "
                 "objective", f"{worse} of {total} pairs" + (f" (fails: {', '.join(failing)})" if failing
                                                             else ""), _verdict(ok))


PAPER_SIGMA = "sigma=0.0001"  # the paper's "the score is not fitted" noise scale (Sec. 3)


def paper_ranking_claim(cells: dict[tuple[str, str], Cell], esm: dict[tuple[str, str], float]) -> Claim:
    """The single-sigma paper runs: over every (sigma, objective) cell, the Spearman correlation between
    the final esm_data and the samples' MMD^2 (both means over the training seeds) is positive."""
    keys = sorted(k for k in cells if k[1] != EXACT and k in esm and np.isfinite(esm[k]))
    ok, numbers = None, "missing samples"
    if len(keys) >= 3:
        rho = float(spearmanr([esm[k] for k in keys], [cells[k].mean[QUALITY] for k in keys]).statistic)
        ok, numbers = bool(np.isfinite(rho) and rho > 0), f"rho = {rho:.2f} over {len(keys)} cells"
    return Claim("the objective with the lower exact Fisher divergence gives the better samples (the "
                 "paper's single-sigma runs)", "the issue's question, on the paper's own runs (Sec. 3)",
                 "plain Langevin at each run's sigma: Spearman rho over the (sigma, objective) cells "
                 f"between the final esm_data and {QUALITY} (means over the training seeds) > 0", numbers,
                 _verdict(ok))


def paper_small_sigma_claim(cells: dict[tuple[str, str], Cell]) -> Claim:
    """At sigma = 1e-4, ISM's samples beat DSM-S's by more than two combined standard errors."""
    ism, dsm = cells.get((PAPER_SIGMA, "ism")), cells.get((PAPER_SIGMA, "dsm_s"))
    ok, numbers = None, "missing samples"
    if ism and dsm:
        a, b = ism.mean[QUALITY], dsm.mean[QUALITY]
        slack = 2 * float(np.hypot(ism.se.get(QUALITY) or 0, dsm.se.get(QUALITY) or 0))
        ok = a < b - slack
        numbers = (f"{QUALITY} at 1e-4: ISM {a:.3g} ± {ism.se.get(QUALITY) or 0:.2g}, DSM-S {b:.3g} ± "
                   f"{dsm.se.get(QUALITY) or 0:.2g} ({ism.runs} and {dsm.runs} training seeds)")
    return Claim("at sigma = 1e-4 ISM's network samples better than DSM-S's (plain Langevin)",
                 "Sec. 3: at sigma = 1e-4 the DSM-S loss barely decreases and the score is not fitted",
                 f"{QUALITY}(ISM) < {QUALITY}(DSM-S) - 2 combined standard errors over the training seeds",
                 numbers, _verdict(ok))


def claims(cells: dict[tuple[str, str], Cell], esm: dict[str, float],
           others: list[tuple[str, dict, dict]] = (), paper: tuple[dict, dict] | None = None) -> list[Claim]:
    """The toy's three claims, the ranking claim for each other group (title, cells, esm), the same rule
    fixed before those groups were sampled, then the two claims on the paper's runs (cells, esm) when
    they were sampled."""
    judged = [weights_claim(cells), ranking_claim(cells, esm, " (the toy)"), exact_bound_claim(cells),
              *(ranking_claim(c, e, f" ({title.split(' (')[0]})") for title, c, e in others)]
    if paper is not None:
        judged += [paper_ranking_claim(*paper), paper_small_sigma_claim(paper[0])]
    return judged
