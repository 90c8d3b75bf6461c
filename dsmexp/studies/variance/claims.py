"""The variance study's claims and their rules, fixed before any smoke, quick or paper run.

Every rule reads the saved metrics only. "The gradient variance" of a run is the median of grad_var (the
trained gradient's per-point variance over the noise, gradvar.py) over the second half of its steps.
Verdicts per seed: supported when every seed satisfies the rule, not supported when none does, mixed
otherwise, inconclusive when a run it needs is missing. Changing a threshold after seeing numbers must be
said in the report with the old and the new verdict.
"""

from __future__ import annotations

import math

import numpy as np

from dsmexp.studies.seed_claims import Claim
from dsmexp.studies.variance.numbers import LABELS, SIGMAS, StudyRun, by_seed, slope

SMALL = 1e-4  # the paper's "the score is not fitted" scale (Sec. 3)
WITHIN = 10.0  # "within 10x of ISM's": grad_var(objective) / grad_var(ISM) at SMALL, same seed
FITS = 2.0  # "fits": final esm_data at SMALL at most 2x ISM's final esm_data there, same seed
SLOPE_RANGE = (-2.5, -1.5)  # the paper's sigma^-2 law for DSM-S, as in the paper study's claims
REDUCED = ("dsm_cv", "dsm_s+anti", "tsm")


def _seeds(runs: list[StudyRun]) -> list[int]:
    return sorted({r.seed for r in runs})


def slope_claim(runs: list[StudyRun]) -> Claim:
    index, results = by_seed(runs), []
    for seed in _seeds(runs):
        values = [index[("dsm_s", s, seed)].late("grad_var") if ("dsm_s", s, seed) in index else math.nan
                  for s in SIGMAS]
        k = slope(list(SIGMAS), values)
        ok = None if not math.isfinite(k) else SLOPE_RANGE[0] <= k <= SLOPE_RANGE[1]
        results.append((ok, f"seed {seed}: slope {k:.2f}"))
    return Claim("DSM-S's gradient variance grows like 1/sigma^2 as sigma shrinks",
                 "Sec. 2.3 and Fig. 2 (the loss's variance), carried to the gradient",
                 f"log-log least-squares slope of the DSM-S gradient variance over sigma in "
                 f"{{{', '.join(f'{s:g}' for s in SIGMAS)}}} within {list(SLOPE_RANGE)}", results)


def _against_ism(runs: list[StudyRun], name: str, value, bound: float) -> list[tuple[bool | None, str]]:
    """Per seed: value(run of `name`) / value(ISM run) at SMALL, and whether it is at most `bound`."""
    index, results = by_seed(runs), []
    for seed in _seeds(runs):
        mine, ism = index.get((name, SMALL, seed)), index.get(("ism", SMALL, seed))
        if mine is None or ism is None:
            results.append((None, f"seed {seed}: missing"))
            continue
        ratio = value(mine) / value(ism)
        results.append((bool(np.isfinite(ratio) and ratio <= bound), f"seed {seed}: ratio {ratio:.3g}"))
    return results


def within_claim(runs: list[StudyRun], name: str) -> Claim:
    return Claim(f"{LABELS[name]} brings DSM's gradient variance at sigma = 1e-4 within 10x of ISM's",
                 "the issue's question; the paper: DSM's variance explodes at small sigma, ISM's does not",
                 f"gradient variance of the {LABELS[name]} run over the ISM run's at sigma = 1e-4, same "
                 f"seed, <= {WITHIN:g}", _against_ism(runs, name, lambda r: r.late("grad_var"), WITHIN))


def fits_claim(runs: list[StudyRun], name: str) -> Claim:
    paper = " (the paper: it does not)" if name == "dsm_s" else ""
    return Claim(f"{LABELS[name]} fits the score at sigma = 1e-4{paper}",
                 "Sec. 3: in the case of sigma = 1e-4 the loss barely decreases and the score is not fitted",
                 f"final esm_data of the {LABELS[name]} run over the ISM run's at sigma = 1e-4, same seed, "
                 f"<= {FITS:g}", _against_ism(runs, name, lambda r: r.final("esm_data"), FITS))


def claims(runs: list[StudyRun]) -> list[Claim]:
    return [slope_claim(runs), *(within_claim(runs, n) for n in REDUCED),
            fits_claim(runs, "dsm_s"), *(fits_claim(runs, n) for n in REDUCED)]
