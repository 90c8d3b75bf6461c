"""The paper's claims, each checked against a sweep's saved metrics by a stated rule.

Every check returns the numbers it measured and a verdict: supported, not supported, or inconclusive
(the runs it needs are missing, or they do not separate the cases). The rules are stated in `rule` and
printed in report.md next to the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dsmexp.figures import final_value, runs_of
from dsmexp.sweeps import Run

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass
class Claim:
    claim: str  # what the paper says
    rule: str  # what is measured and when it counts as supported
    numbers: str  # the measured values
    verdict: str


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def _verdict(ok: bool) -> str:
    return SUPPORTED if ok else NOT_SUPPORTED


def _at(runs: list[Run], loss: str, sigma: float) -> Run | None:
    chosen = runs_of(runs, loss, sigma)
    return chosen[0] if chosen else None


def _dsm_runs(runs: list[Run]) -> list[Run]:
    return runs_of(runs, "dsm_s") or runs_of(runs, "dsm")


def dsm_constant(runs: list[Run]) -> Claim:
    claim = "DSM and DSM-S differ by the parameter-free constant E|eps|^2 / (2 sigma^2) (Eq. 7, 9)"
    rule = ("max over every logged step of |loss_dsm - loss_dsm_s - const_dsm| / |loss_dsm|; "
            "supported if < 1e-9")
    noisy = [r for r in runs if r.sigma > 0 and len(r.metrics["step"])]
    if not noisy:
        return Claim(claim, rule, "no run with sigma > 0", INCONCLUSIVE)
    worst = max(float(np.nanmax(np.abs(m["loss_dsm"] - m["loss_dsm_s"] - m["const_dsm"])
                                 / np.maximum(np.abs(m["loss_dsm"]), 1e-300)))
                for m in (r.metrics for r in noisy))
    rows = sum(len(r.metrics["step"]) for r in noisy)
    return Claim(claim, rule, f"{_fmt(worst)} over {rows} steps of {len(noisy)} runs", _verdict(worst < 1e-9))


def fit_agreement(runs: list[Run], sigma: float = 0.01) -> Claim:
    claim = (f"at sigma = {sigma:g} the ISM and DSM fitting terms agree at every step, whichever loss "
             "trains (Fig. 1)")
    rule = ("fraction of steps with |fit_ism - fit_dsm| <= 3 combined standard errors; supported if >= 0.95 "
            "in every run, not supported if < 0.8 in any")
    parts, fractions = [], []
    for loss in ("dsm_s", "ism"):
        run = _at(runs, loss, sigma)
        if run is None:
            continue
        m = run.metrics
        within = np.abs(m["fit_ism"] - m["fit_dsm"]) <= 3 * np.hypot(m["fit_ism_se"], m["fit_dsm_se"])
        fractions.append(float(within.mean()))
        parts.append(f"{loss} training: {fractions[-1]:.3f}")
    if not fractions:
        return Claim(claim, rule, f"no run at sigma = {sigma:g}", INCONCLUSIVE)
    verdict = SUPPORTED if min(fractions) >= 0.95 else NOT_SUPPORTED if min(fractions) < 0.8 else INCONCLUSIVE
    return Claim(claim, rule, "; ".join(parts), verdict)


def dsm_variance_slope(runs: list[Run]) -> Claim:
    claim = "the variance of the DSM fitting term grows like sigma^-2 as sigma shrinks (Sec. 2.3, Fig. 2)"
    rule = ("per-point variance of <s, eps>/sigma (fit_dsm_se^2 * M N) divided by each network's own E|s|^2 "
            "(2 * norm), median over steps, fitted against sigma on log-log axes in DSM runs; supported if "
            "the slope is within 0.2 of -2 (raw slopes, without that division, for context)")
    chosen = [r for r in _dsm_runs(runs) if r.sigma > 0]
    if len({r.sigma for r in chosen}) < 3:
        return Claim(claim, rule, "fewer than three noise scales", INCONCLUSIVE)
    slope = _variance_slope(chosen, per_score_norm=True)
    raw = {loss: _variance_slope([r for r in runs_of(runs, loss) if r.sigma > 0], per_score_norm=False)
           for loss in ("dsm_s", "dsm", "ism")}
    context = ", ".join(f"raw slope in {loss} runs {v:.3f}" for loss, v in raw.items() if math.isfinite(v))
    return Claim(claim, rule, f"slope {slope:.3f}; {context}", _verdict(abs(slope + 2) < 0.2))


def _variance_slope(chosen: list[Run], per_score_norm: bool) -> float:
    """Log-log slope against sigma of the per-point variance of the DSM fitting term."""
    if len({r.sigma for r in chosen}) < 3:
        return math.nan
    sig = np.array([r.sigma for r in chosen])
    var = np.array([np.median(r.metrics["fit_dsm_se"] ** 2 * _points(r)
                              / (2 * r.metrics["norm"] if per_score_norm else 1.0)) for r in chosen])
    return float(np.polyfit(np.log(sig), np.log(var), 1)[0])


def _points(run: Run) -> int:
    return int(run.config["noise_samples"]) * int(run.config["dataset"]["n_samples"])


def dsm_gradient_growth(runs: list[Run]) -> Claim:
    claim = "at sigma = 1e-3 the DSM gradient norm rises sharply, more so at 1e-4 (Fig. 2 bottom)"
    rule = ("median gradient norm over steps of DSM-S at 1e-3 and 1e-4 over that at 1e-2; "
            "supported if r(1e-4) > r(1e-3) > 1")
    med = {s: np.median(r.metrics["grad_norm_dsm"]) for s in (1e-2, 1e-3, 1e-4)
           for r in [_at(runs, "dsm_s", s) or _at(runs, "dsm", s)] if r is not None}
    if len(med) < 3:
        return Claim(claim, rule, "needs DSM runs at 1e-2, 1e-3 and 1e-4", INCONCLUSIVE)
    r3, r4 = med[1e-3] / med[1e-2], med[1e-4] / med[1e-2]
    numbers = f"r(1e-3) = {_fmt(r3)}, r(1e-4) = {_fmt(r4)} (median at 1e-2: {_fmt(med[1e-2])})"
    return Claim(claim, rule, numbers, _verdict(r4 > r3 > 1))


def _improvement(run: Run) -> float:
    """Relative drop of esm_data from the first evaluation to the last."""
    values = run.metrics["esm_data"][np.isfinite(run.metrics["esm_data"])]
    return float((values[0] - values[-1]) / values[0]) if len(values) > 1 else math.nan


def _loss_drop(run: Run) -> tuple[float, float]:
    """(mean loss over the first 10% of steps minus over the last 10%, std over the last 10%)."""
    loss = run.metrics["loss_dsm_s"]
    tenth = max(1, len(loss) // 10)
    return float(loss[:tenth].mean() - loss[-tenth:].mean()), float(loss[-tenth:].std())


def small_sigma_stalls(runs: list[Run]) -> Claim:
    claim = "at sigma = 1e-4 the DSM-S loss barely decreases and the score is not fitted (Sec. 3)"
    rule = ("relative drop of esm_data over training, and the drop of loss_dsm_s (first vs last 10% of "
            "steps) against its spread; supported if the esm_data drop at 1e-4 is under half that at 1e-2 "
            "and the loss drop at 1e-4 is under 2 spreads")
    small, ref = _at(runs, "dsm_s", 1e-4), _at(runs, "dsm_s", 1e-2)
    if small is None or ref is None:
        return Claim(claim, rule, "needs DSM-S runs at 1e-4 and 1e-2", INCONCLUSIVE)
    gain_small, gain_ref = _improvement(small), _improvement(ref)
    drop, spread = _loss_drop(small)
    numbers = (f"esm_data drop {_fmt(gain_small)} at 1e-4 vs {_fmt(gain_ref)} at 1e-2; "
               f"loss drop at 1e-4 {_fmt(drop)} with spread {_fmt(spread)}")
    if not gain_ref > 0:
        return Claim(claim, rule, numbers + " (nothing learned at 1e-2)", INCONCLUSIVE)
    return Claim(claim, rule, numbers, _verdict(gain_small < 0.5 * gain_ref and drop < 2 * spread))


def ism_robust(runs: list[Run]) -> Claim:
    claim = "ISM learns equally well at every small noise scale, including none (Sec. 3, Fig. 2 right)"
    rule = "final esm_data of ISM at sigma in {0, 1e-4, 1e-3, 1e-2}; supported if (max - min) / min < 0.2"
    values = {s: final_value(r, "esm_data") for s in (0.0, 1e-4, 1e-3, 1e-2) for r in [_at(runs, "ism", s)]
              if r is not None}
    if len(values) < 3:
        return Claim(claim, rule, "needs ISM runs at three of those scales", INCONCLUSIVE)
    spread = (max(values.values()) - min(values.values())) / min(values.values())
    numbers = ", ".join(f"{s:g}: {_fmt(v)}" for s, v in values.items()) + f"; spread {_fmt(spread)}"
    return Claim(claim, rule, numbers, _verdict(spread < 0.2))


def large_sigma_bias(runs: list[Run]) -> Claim:
    claim = "at sigma = 1e-1 the learned score is far from the score of the data (Sec. 3)"
    rule = ("final esm_data at 1e-1 over the best final esm_data of any run at sigma <= 1e-2 in the sweep; "
            "supported if > 1.2 for every loss (esm vs q_sigma shows the model did fit its own, smoothed "
            "target)")
    small = [final_value(r, "esm_data") for r in runs if r.sigma <= 1e-2 and len(r.metrics["step"])]
    best = min((v for v in small if math.isfinite(v)), default=math.nan)
    parts, ratios = [], []
    for loss in ("dsm_s", "ism"):
        big = _at(runs, loss, 1e-1)
        if big is None or not math.isfinite(best):
            continue
        ratios.append(final_value(big, "esm_data") / best)
        parts.append(f"{loss}: esm_data {_fmt(final_value(big, 'esm_data'))} = {_fmt(ratios[-1])} x best "
                     f"({_fmt(best)}); esm vs q_sigma {_fmt(final_value(big, 'esm'))}")
    if not ratios:
        return Claim(claim, rule, "needs a run at 1e-1 and one at sigma <= 1e-2", INCONCLUSIVE)
    return Claim(claim, rule, "; ".join(parts), _verdict(min(ratios) > 1.2))


def gradient_agreement(runs: list[Run], sigma: float = 0.01) -> Claim:
    claim = (f"during ISM training at sigma = {sigma:g} the ISM and DSM gradients point the same way "
             "(Fig. 3 right)")
    rule = ("median over steps of the cosine of the two gradients; supported if > 0.5 (medians at other "
            "sigma for context)")
    ism = runs_of(runs, "ism")
    medians = {r.sigma: float(np.nanmedian(r.metrics["grad_cos"])) for r in ism if r.sigma > 0}
    if sigma not in medians:
        return Claim(claim, rule, f"no ISM run at sigma = {sigma:g}", INCONCLUSIVE)
    numbers = ", ".join(f"{s:g}: {_fmt(v)}" for s, v in sorted(medians.items()))
    return Claim(claim, rule, numbers, _verdict(medians[sigma] > 0.5))


CHECKS: tuple[Callable[[list[Run]], Claim], ...] = (
    dsm_constant, fit_agreement, dsm_variance_slope, dsm_gradient_growth, small_sigma_stalls, ism_robust,
    large_sigma_bias, gradient_agreement)


def evaluate_claims(runs: list[Run]) -> list[Claim]:
    return [check(runs) for check in CHECKS]
