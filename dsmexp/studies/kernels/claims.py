"""The noise-kernel study's numbers and claims, with rules fixed before any of its runs was trained.

The runs are the paper study's Figure 2 grid (DSM-S and ISM at sigma in {0, 1e-4, 1e-3, 1e-2, 1e-1})
under each noise kernel (noise.kernel; dsmexp/core/noise.py), one sweep per kernel. Every rule reads the
saved metrics only; verdicts per seed: supported when every seed satisfies the rule, not supported when
none does, mixed otherwise, inconclusive when a run it needs is missing.

The fitting term's normalised variance. DSM's fitting term at a point is -<s(z), t> with the kernel's
target t = grad_z log q(z | x) (Prop. 2 holds for any smooth kernel: E[div s] = -E[<s, t>], by parts).
As sigma -> 0, s(z) -> s(x) and Var_eps <s, t> = s^T E[t t^T] s + O(1) = |s|^2 I / sigma^2 + O(1), where I
is the kernel's Fisher information per coordinate at scale 1: 1 for the Gaussian, E[sign^2] = 1 for the
Laplace product kernel, (df + d) / (df + d + 2) for the multivariate Student-t (5/7 for df = 3 in 2-D).
So sigma^2 Var / mean |s|^2 = sigma^2 P fit_dsm_se^2 / (2 norm) (P = M N points; norm = 0.5 mean |s|^2)
estimates I at small sigma, whatever the network has learned: that is the number the claims compare.
"""

from __future__ import annotations

import math

import numpy as np

from dsmexp.records.sweeps import Run
from dsmexp.studies.seed_claims import Claim

SMALL = (1e-4, 1e-3)  # where the O(1) remainder of the variance is below 1e-5 of its 1/sigma^2 part
Z, MIN_FRACTION = 3.0, 0.95  # Prop. 2 per step, as the paper study's fit_agreement rule
FISHER_TOLERANCE = 0.10  # |measured / predicted - 1| at every SMALL sigma
# "larger": the ratio to the Gaussian's above 1 + HEAVIER_MARGIN. Changed after the first published runs
# from "above 1": that rule had no margin, and called Laplace's ratio of 1.0003 (predicted: exactly 1)
# larger (old verdict supported, new not supported; Student-t not supported under both).
HEAVIER_MARGIN = 0.05


def kernel_label(noise: dict) -> str:
    kernel = noise.get("kernel", "gaussian")
    return f"student_t (df {noise.get('df'):g})" if kernel == "student_t" else kernel


def fisher_information(noise: dict, dim: int) -> float:
    """The kernel's Fisher information per coordinate at scale 1 (module docstring)."""
    kernel = noise.get("kernel", "gaussian")
    if kernel == "student_t":
        df = float(noise["df"])
        return (df + dim) / (df + dim + 2)
    return 1.0


def normalised_variance(run: Run) -> float:
    """Median over the steps of sigma^2 P fit_dsm_se^2 / (2 norm) (module docstring)."""
    m = run.metrics
    if "fit_dsm_se" not in m or not len(m["fit_dsm_se"]):
        return math.nan
    points = run.config["noise_samples"] * run.config["dataset"]["n_samples"]
    values = run.sigma ** 2 * points * m["fit_dsm_se"] ** 2 / (2 * m["norm"])
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else math.nan


def raw_variance(run: Run) -> float:
    """Median over the steps of the fitting term's per-point variance P fit_dsm_se^2."""
    m = run.metrics
    points = run.config["noise_samples"] * run.config["dataset"]["n_samples"]
    values = points * m["fit_dsm_se"] ** 2
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else math.nan


def agreement(run: Run) -> float:
    """The fraction of steps with |fit_ism - fit_dsm| <= Z times their combined standard error."""
    m = run.metrics
    within = np.abs(m["fit_ism"] - m["fit_dsm"]) <= Z * np.hypot(m["fit_ism_se"], m["fit_dsm_se"])
    return float(within.mean()) if len(within) else math.nan


def _index(runs: list[Run]) -> dict[tuple[str, float, int], Run]:
    return {(r.loss, float(r.sigma), r.seed): r for r in runs if r.status == "completed"}


def prop2_claim(kernel: str, runs: list[Run]) -> Claim:
    results = []
    for seed in sorted({r.seed for r in runs}):
        noisy = [r for r in runs if r.seed == seed and r.sigma > 0 and r.status == "completed"]
        if len(noisy) < 8:
            results.append((None, f"seed {seed}: {len(noisy)} of 8 noisy runs"))
            continue
        worst = min(agreement(r) for r in noisy)
        results.append((worst >= MIN_FRACTION, f"seed {seed}: lowest fraction {worst:.3f}"))
    return Claim(f"Prop. 2 holds under the {kernel} kernel: the ISM and DSM fitting terms agree at every "
                 "step",
                 "the issue: integration by parts gives E[div s] = -E[<s, grad_z log q(z|x)>] for any smooth "
                 "kernel; the paper's Prop. 2 and Fig. 1 for the Gaussian",
                 f"in every run with sigma > 0 (DSM-S and ISM, 8 runs), the fraction of steps with "
                 f"|fit_ism - fit_dsm| <= {Z:g} x combined SE is >= {MIN_FRACTION}", results)


def fisher_claim(kernel: str, noise: dict, runs: list[Run]) -> Claim:
    index, results = _index(runs), []
    predicted = fisher_information(noise, _dim(runs))
    for seed in sorted({r.seed for r in runs}):
        found = [index.get(("dsm_s", s, seed)) for s in SMALL]
        if any(r is None for r in found):
            results.append((None, f"seed {seed}: missing"))
            continue
        ratios = [normalised_variance(r) / predicted for r in found]
        ok = all(np.isfinite(q) and abs(q - 1) <= FISHER_TOLERANCE for q in ratios)
        results.append((ok, f"seed {seed}: " + ", ".join(f"{q:.3f}" for q in ratios)))
    return Claim(f"under the {kernel} kernel DSM's small-sigma fitting-term variance is |s|^2 I / sigma^2 "
                 f"(I = {predicted:.4g})", "this study's derivation (module docstring of "
                 "dsmexp/studies/kernels/claims.py); the paper's Sec. 2.3 for the Gaussian (I = 1)",
                 f"measured / predicted normalised variance of the DSM-S run at sigma = "
                 f"{', '.join(f'{s:g}' for s in SMALL)} within 1 +- {FISHER_TOLERANCE:g}", results)


def heavier_claim(label: str, runs: list[Run], gaussian: list[Run]) -> Claim:
    mine, base, results = _index(runs), _index(gaussian), []
    for seed in sorted({r.seed for r in runs}):
        a, b = mine.get(("dsm_s", 1e-4, seed)), base.get(("dsm_s", 1e-4, seed))
        if a is None or b is None:
            results.append((None, f"seed {seed}: missing"))
            continue
        ratio, raw = normalised_variance(a) / normalised_variance(b), raw_variance(a) / raw_variance(b)
        results.append((bool(ratio > 1 + HEAVIER_MARGIN), f"seed {seed}: ratio {ratio:.4f} (raw variance "
                                                           f"{raw:.3f})"))
    return Claim(f"DSM's fitting-term variance at small sigma is larger under {label} than Gaussian noise",
                 "the issue's example claim (heavy-tailed noise argued both ways in current papers)",
                 "normalised variance of the DSM-S run at sigma = 1e-4 over the Gaussian run's, same seed "
                 f"and scale sigma, > {1 + HEAVIER_MARGIN:g} (the raw per-point variance in brackets; "
                 "changed after the first runs from > 1, which had no margin: Laplace's old verdict was "
                 "supported)",
                 results)


def _dim(runs: list[Run]) -> int:
    """The data's dimension (the 2-D curves have no dim key)."""
    return int(next((r.config["dataset"].get("dim", 2) for r in runs), 2))
