"""The energy study's numbers and claims, with rules fixed before any of its runs was trained.

The runs: half-moon, loss in {ism, dsm_s}, sigma in {0.01, 0.1}, model.parametrization in {score (a
free-form MLP 2-16-32-2), energy (an MLP energy 2-16-32-1, s = -grad E)}, seeds 0..K-1, every run on the
torch path. Every rule reads the saved metrics only; verdicts per seed: supported when every seed
satisfies the rule, not supported when none does, mixed otherwise, inconclusive when a run it needs is
missing. A changed threshold must be reported with the old and the new verdict.
"""

from __future__ import annotations

import math

import numpy as np

from dsmexp.records.sweeps import Run
from dsmexp.studies.seed_claims import Claim

LOSSES = ("ism", "dsm_s")
SIGMAS = (0.01, 0.1)
CURL_RATIO = 1e-3  # an energy field's final curl over the free-form field's, same loss, sigma and seed
FIT_RATIO = 1.5  # "fits as well": final esm of the energy run over the free-form run's, at most
STEP_RATIO = 3.0  # the bound on the energy model's ISM step time over the score model's
KL_AGREEMENT = 0.10  # ISM and DSM-S energies' final KL within 10% of each other at each sigma


def parametrization(run: Run) -> str:
    return (run.config.get("model") or {}).get("parametrization", "score")


def index(runs: list[Run]) -> dict[tuple[str, str, float, int], Run]:
    """(parametrization, loss, sigma, seed) -> the completed run."""
    return {(parametrization(r), r.loss, float(r.sigma), r.seed): r for r in runs if r.status == "completed"}


def final(run: Run, column: str) -> float:
    values = run.metrics.get(column)
    finite = values[np.isfinite(values)] if values is not None else np.array([])
    return float(finite[-1]) if len(finite) else math.nan


def first(run: Run, column: str) -> float:
    values = run.metrics.get(column)
    finite = values[np.isfinite(values)] if values is not None else np.array([])
    return float(finite[0]) if len(finite) else math.nan


def step_seconds(run: Run) -> float:
    """The median time of a step (time_s differences: evaluation steps fall outside the median)."""
    t = run.metrics.get("time_s")
    return float(np.median(np.diff(t))) if t is not None and len(t) > 2 else math.nan


def _per_seed(runs: list[Run], judge) -> list[tuple[bool | None, str]]:
    found, results = index(runs), []
    for seed in sorted({r.seed for r in runs}):
        try:
            results.append(judge(found, seed))
        except KeyError as missing:
            results.append((None, f"seed {seed}: missing {missing}"))
    return results


def _ratio(found: dict, column: str, loss: str, sigma: float, seed: int) -> float:
    """The final value of `column` in the energy run over the free-form run's (same loss, sigma, seed)."""
    energy, score = found[("energy", loss, sigma, seed)], found[("score", loss, sigma, seed)]
    return final(energy, column) / final(score, column)


def conservative_claim(runs: list[Run]) -> Claim:
    def judge(found, seed):
        ratios = [_ratio(found, "curl", loss, s, seed) for loss in LOSSES for s in SIGMAS]
        return all(q <= CURL_RATIO for q in ratios), f"seed {seed}: largest ratio {max(ratios):.2g}"
    return Claim("an energy model's score field is conservative and a free-form score's is not",
                 "the issue: compare free-form and conservative score fields (the curl as a column)",
                 f"final curl of every energy run over the free-form run's (same loss, sigma, seed) <= "
                 f"{CURL_RATIO:g}", _per_seed(runs, judge))


def fit_claim(runs: list[Run]) -> Claim:
    def judge(found, seed):
        ratios = [_ratio(found, "esm", loss, s, seed) for loss in LOSSES for s in SIGMAS]
        return all(q <= FIT_RATIO for q in ratios), f"seed {seed}: " + ", ".join(f"{q:.3g}" for q in ratios)
    return Claim("the energy parametrisation fits q_sigma as well as the free-form score",
                 "seed 003 (energy-based DSM); the issue's comparison of the two parametrisations",
                 f"final esm of the energy run over the free-form run's <= {FIT_RATIO:g} for each of "
                 "(ism, 0.01), (ism, 0.1), (dsm_s, 0.01), (dsm_s, 0.1)", _per_seed(runs, judge))


def step_claim(runs: list[Run]) -> Claim:
    def judge(found, seed):
        energy, score = found[("energy", "ism", 0.01, seed)], found[("score", "ism", 0.01, seed)]
        ratio = step_seconds(energy) / step_seconds(score)
        return ratio <= STEP_RATIO, f"seed {seed}: ratio {ratio:.2f}"
    return Claim("the energy model's ISM step costs at most 3x the score model's in 2-D",
                 "the issue's example claim (ISM needs the Hessian trace of E, DSM a double backward pass)",
                 f"median step time of the energy ISM run over the free-form ISM run's at sigma = 0.01, "
                 f"same seed, both kernel=torch on one thread, <= {STEP_RATIO:g}", _per_seed(runs, judge))


def kl_falls_claim(runs: list[Run]) -> Claim:
    def judge(found, seed):
        chosen = [found[("energy", loss, s, seed)] for loss in LOSSES for s in SIGMAS]
        pairs = [(first(r, "kl"), final(r, "kl")) for r in chosen]
        return (all(b < a for a, b in pairs),
                f"seed {seed}: " + ", ".join(f"{a:.3g} -> {b:.3g}" for a, b in pairs))
    return Claim("training lowers the energy model's KL(q_sigma || p_model)",
                 "the issue: the normalised energy's KL against the exact density, logged at eval steps",
                 "final kl below the first evaluation's in every energy run", _per_seed(runs, judge))


def kl_agreement_claim(runs: list[Run]) -> Claim:
    def judge(found, seed):
        kl = {(loss, s): final(found[("energy", loss, s, seed)], "kl") for loss in LOSSES for s in SIGMAS}
        gaps = [abs(kl[("dsm_s", s)] / kl[("ism", s)] - 1) for s in SIGMAS]
        return all(g <= KL_AGREEMENT for g in gaps), f"seed {seed}: " + ", ".join(f"{g:.3f}" for g in gaps)
    return Claim("ISM and DSM-S train the energy to the same KL at sigma = 0.01 and 0.1",
                 "the paper's Prop. 2 and Sec. 3 (ISM and DSM-S learn alike at these scales), for an energy",
                 f"|final kl of the DSM-S energy / the ISM energy's - 1| <= {KL_AGREEMENT:g} at each sigma",
                 _per_seed(runs, judge))


def all_claims(runs: list[Run]) -> list[Claim]:
    return [conservative_claim(runs), fit_claim(runs), step_claim(runs), kl_falls_claim(runs),
            kl_agreement_claim(runs)]
