"""The paper's claims, each checked against a sweep's saved metrics by a rule fixed in advance.

Every rule lives in one declarative table, rules.RULES: what the paper says (and where), what is measured,
and the thresholds with their meaning. A claim is evaluated once per seed on that seed's runs; the
verdict over seeds is `supported` when every seed with the runs it needs satisfies the rule, `not
supported` when none does, `mixed` otherwise (naming the seeds), and `inconclusive` when no seed has the
runs. Only finished runs are judged (summary.json says completed after all its steps; finished_runs):
a run still training, interrupted, diverged or failed is left out with the reason. report.md prints the
table of rules next to the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dsmexp.records.runlock import holder_pid, is_busy
from dsmexp.records.sweeps import Run
from dsmexp.studies.paper.figures import final_value, runs_of
from dsmexp.studies.paper.rules import RULES, Rule

SUPPORTED, NOT_SUPPORTED, MIXED, INCONCLUSIVE = "supported", "not supported", "mixed", "inconclusive"


@dataclass
class SeedResult:
    """One seed's statistics for a rule; ok is None when that seed lacks the runs the rule needs."""

    values: dict[str, float] = field(default_factory=dict)
    ok: bool | None = None
    note: str = ""


@dataclass
class Claim:
    """A rule evaluated over every seed of a sweep."""

    rule: Rule
    seeds: dict[int, SeedResult]
    verdict: str
    numbers: str  # statistics as median [min, max] over seeds
    tally: str  # "k/n" seeds satisfying the rule, with the failing seeds when mixed

    @property
    def claim(self) -> str:
        return self.rule.claim


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def _at(runs: list[Run], loss: str, sigma: float) -> Run | None:
    chosen = runs_of(runs, loss, sigma)
    return chosen[0] if chosen else None


def _dsm_runs(runs: list[Run]) -> list[Run]:
    return runs_of(runs, "dsm_s") or runs_of(runs, "dsm")


def _missing(what: str) -> SeedResult:
    return SeedResult(note=f"needs {what}")


def dsm_constant(runs: list[Run], t: dict[str, float]) -> SeedResult:
    noisy = [r for r in runs if r.sigma > 0 and len(r.metrics["step"])]
    if not noisy:
        return _missing("a run with sigma > 0")
    worst = max(float(np.nanmax(np.abs(m["loss_dsm"] - m["loss_dsm_s"] - m["const_dsm"])
                                 / np.maximum(np.abs(m["loss_dsm"]), 1e-300)))
                for m in (r.metrics for r in noisy))
    return SeedResult({"worst": worst}, worst < t["max_rel"])


def fit_agreement(runs: list[Run], t: dict[str, float], sigma: float = 0.01) -> SeedResult:
    fractions = {}
    for loss in ("dsm_s", "ism"):
        run = _at(runs, loss, sigma)
        if run is None:
            return _missing(f"DSM-S and ISM runs at sigma = {sigma:g}")
        m = run.metrics
        within = np.abs(m["fit_ism"] - m["fit_dsm"]) <= t["z"] * np.hypot(m["fit_ism_se"], m["fit_dsm_se"])
        fractions[loss] = float(within.mean())
    values = {"fraction (DSM-S run)": fractions["dsm_s"], "fraction (ISM run)": fractions["ism"]}
    return SeedResult(values, min(fractions.values()) >= t["min_fraction"])


def dsm_variance_slope(runs: list[Run], t: dict[str, float]) -> SeedResult:
    chosen = [r for r in _dsm_runs(runs) if r.sigma > 0]
    if len({r.sigma for r in chosen}) < 3:
        return _missing("DSM runs at three noise scales")
    slope = _variance_slope(chosen, per_score_norm=True)
    raw = _variance_slope(chosen, per_score_norm=False)
    return SeedResult({"slope": slope, "raw slope (undivided)": raw},
                      abs(slope - t["target"]) < t["tolerance"])


def _variance_slope(chosen: list[Run], per_score_norm: bool) -> float:
    """Log-log slope against sigma of the per-point variance of the DSM fitting term."""
    sig = np.array([r.sigma for r in chosen])
    var = np.array([np.median(r.metrics["fit_dsm_se"] ** 2 * _points(r)
                              / (2 * r.metrics["norm"] if per_score_norm else 1.0)) for r in chosen])
    return float(np.polyfit(np.log(sig), np.log(var), 1)[0])


def _points(run: Run) -> int:
    return int(run.config["noise_samples"]) * int(run.config["dataset"]["n_samples"])


def dsm_gradient_growth(runs: list[Run], t: dict[str, float]) -> SeedResult:
    med = {s: float(np.median(r.metrics["grad_norm_dsm"])) for s in (1e-2, 1e-3, 1e-4)
           for r in [_at(runs, "dsm_s", s) or _at(runs, "dsm", s)] if r is not None}
    if len(med) < 3:
        return _missing("DSM runs at 1e-2, 1e-3 and 1e-4")
    r3, r4 = med[1e-3] / med[1e-2], med[1e-4] / med[1e-2]
    return SeedResult({"r(1e-3)": r3, "r(1e-4)": r4}, r3 >= t["sharp"] and r4 >= t["sharp"] * r3)


def _improvement(run: Run) -> float:
    """Relative drop of esm_data from the first evaluation to the last."""
    values = run.metrics["esm_data"][np.isfinite(run.metrics["esm_data"])]
    return float((values[0] - values[-1]) / values[0]) if len(values) > 1 else math.nan


def _loss_drop(run: Run) -> tuple[float, float]:
    """(mean loss over the first 10% of steps minus over the last 10%, std over the last 10%)."""
    loss = run.metrics["loss_dsm_s"]
    tenth = max(1, len(loss) // 10)
    return float(loss[:tenth].mean() - loss[-tenth:].mean()), float(loss[-tenth:].std())


def small_sigma_stalls(runs: list[Run], t: dict[str, float]) -> SeedResult:
    small, ref = _at(runs, "dsm_s", 1e-4), _at(runs, "dsm_s", 1e-2)
    if small is None or ref is None:
        return _missing("DSM-S runs at 1e-4 and 1e-2")
    gain_small, gain_ref = _improvement(small), _improvement(ref)
    drop, spread = _loss_drop(small)
    values = {"esm_data drop at 1e-4": gain_small, "esm_data drop at 1e-2": gain_ref,
              "loss drop / std at 1e-4": drop / spread if spread > 0 else math.inf}
    if not gain_ref > 0:
        return SeedResult(values, None, "nothing learned at 1e-2")
    return SeedResult(values, gain_small < t["fitted_fraction"] * gain_ref and drop < t["spreads"] * spread)


def ism_robust(runs: list[Run], t: dict[str, float]) -> SeedResult:
    values = {s: final_value(r, "esm_data") for s in (0.0, 1e-4, 1e-3, 1e-2) for r in [_at(runs, "ism", s)]
              if r is not None}
    if len(values) < 3:
        return _missing("ISM runs at three of sigma 0, 1e-4, 1e-3, 1e-2")
    spread = (max(values.values()) - min(values.values())) / min(values.values())
    return SeedResult({"spread": spread} | {f"esm_data at {s:g}": v for s, v in values.items()},
                      spread < t["max_spread"])


def ism_noiseless(runs: list[Run], t: dict[str, float]) -> SeedResult:
    clean = _at(runs, "ism", 0.0)
    dsm = [final_value(r, "esm_data") for r in _dsm_runs(runs) if r.sigma > 0]
    dsm = [v for v in dsm if math.isfinite(v)]
    if clean is None or not dsm:
        return _missing("an ISM run at sigma = 0 and DSM-S runs")
    ratio = final_value(clean, "esm_data") / min(dsm)
    return SeedResult({"ratio": ratio, "ISM at 0": final_value(clean, "esm_data"), "best DSM-S": min(dsm)},
                      ratio <= t["max_ratio"])


def large_sigma_bias(runs: list[Run], t: dict[str, float]) -> SeedResult:
    small = [final_value(r, "esm_data") for r in runs if r.sigma <= 1e-2 and len(r.metrics["step"])]
    best = min((v for v in small if math.isfinite(v)), default=math.nan)
    ratios = {}
    for loss in ("dsm_s", "ism"):
        big = _at(runs, loss, 1e-1)
        if big is None or not math.isfinite(best):
            return _missing("DSM-S and ISM runs at 1e-1 and a run at sigma <= 1e-2")
        ratios[f"ratio {loss}"] = final_value(big, "esm_data") / best
    return SeedResult(ratios | {"best at sigma <= 1e-2": best}, min(ratios.values()) >= t["far"])


def intermediate_sigma(runs: list[Run], t: dict[str, float]) -> SeedResult:
    finals = {s: final_value(r, "esm_data") for s in (1e-4, 1e-3, 1e-2, 1e-1) for r in [_at(runs, "dsm_s", s)]
              if r is not None}
    if len(finals) < 4 or not all(math.isfinite(v) for v in finals.values()):
        return _missing("DSM-S runs at 1e-4, 1e-3, 1e-2 and 1e-1")
    best = min(finals, key=finals.get)
    return SeedResult({"log10 best sigma": math.log10(best)}, t["smallest"] < best < t["largest"])


def gradient_agreement(runs: list[Run], t: dict[str, float], sigma: float = 0.01) -> SeedResult:
    run = _at(runs, "ism", sigma)
    if run is None:
        return _missing(f"an ISM run at sigma = {sigma:g}")
    values = {"median cosine": float(np.nanmedian(run.metrics["grad_cos"]))}
    for other in sorted({r.sigma for r in runs_of(runs, "ism") if r.sigma > 0 and r.sigma != sigma}):
        values[f"at {other:g}"] = float(np.nanmedian(_at(runs, "ism", other).metrics["grad_cos"]))
    return SeedResult(values, values["median cosine"] > t["min_cosine"])


CHECKS: dict[str, Callable[[list[Run], dict[str, float]], SeedResult]] = {
    "dsm_constant": dsm_constant, "fit_agreement": fit_agreement, "dsm_variance_slope": dsm_variance_slope,
    "dsm_gradient_growth": dsm_gradient_growth, "small_sigma_stalls": small_sigma_stalls,
    "ism_robust": ism_robust, "ism_noiseless": ism_noiseless, "large_sigma_bias": large_sigma_bias,
    "intermediate_sigma": intermediate_sigma, "gradient_agreement": gradient_agreement}


def by_seed(runs: list[Run]) -> dict[int, list[Run]]:
    """The runs of each seed, seeds in increasing order."""
    seeds: dict[int, list[Run]] = {}
    for run in runs:
        seeds.setdefault(run.seed, []).append(run)
    return dict(sorted(seeds.items()))


def evaluate(rule: Rule, runs: list[Run]) -> Claim:
    """Apply one rule to every seed and combine the seeds into a verdict."""
    check = CHECKS[rule.name]
    results = {seed: check(seed_runs, rule.thresholds) for seed, seed_runs in by_seed(runs).items()}
    decided = {seed: r.ok for seed, r in results.items() if r.ok is not None}
    passed = [seed for seed, ok in decided.items() if ok]
    failed = [seed for seed, ok in decided.items() if not ok]
    if not decided:
        verdict = INCONCLUSIVE
    elif not failed:
        verdict = SUPPORTED
    elif not passed:
        verdict = NOT_SUPPORTED
    else:
        verdict = MIXED
    tally = f"{len(passed)}/{len(results)}"
    if verdict == MIXED:
        tally += f" (fails for seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))})"
    undecided = len(results) - len(decided)
    if undecided:
        notes = sorted({r.note for r in results.values() if r.ok is None and r.note})
        tally += f"; {undecided} without a verdict ({'; '.join(notes)})"
    return Claim(rule, results, verdict, summarise(results), tally)


def summarise(results: dict[int, SeedResult]) -> str:
    """Each statistic as its value (one seed) or median [min, max] over the seeds that have it."""
    names: list[str] = []
    for r in results.values():
        names += [n for n in r.values if n not in names]
    parts = []
    for name in names:
        values = np.array([r.values[name] for r in results.values() if name in r.values], dtype=float)
        finite = values[np.isfinite(values)]
        if len(values) == 1 or len(finite) == 0:
            parts.append(f"{name} {_fmt(values[0])}")
        else:
            low, high = _fmt(finite.min()), _fmt(finite.max())
            parts.append(f"{name} {_fmt(float(np.median(finite)))} [{low}, {high}]")
    return "; ".join(parts) if parts else "no runs"


def not_finished(run: Run) -> str | None:
    """Why a run cannot be judged (still training, interrupted, diverged, failed, stopped early), or None
    when summary.json says it completed all its steps."""
    steps = run.summary.get("steps", run.config.get("steps"))
    if not run.summary:
        logged = f"{len(run.metrics['step'])} of {steps} steps logged"
        if is_busy(run.run_dir):
            return f"running ({logged}; process {holder_pid(run.run_dir) or '?'} is training it)"
        return f"interrupted ({logged}; no summary.json, so it stopped before its last step)"
    status, done = run.summary.get("status"), run.summary.get("steps_done")
    if status == "diverged":
        return f"diverged (at step {run.summary.get('diverged_step')}, {done} of {steps} steps)"
    if status == "failed":
        return f"failed ({run.summary.get('error') or 'no error recorded'}; {done} of {steps} steps)"
    if status != "completed":
        return f"{status} ({done} of {steps} steps)"
    if done != steps:
        return f"completed after {done} of {steps} steps"
    return None


def finished_runs(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, str]]]:
    """(the runs the claims judge, (run, why) for the others)."""
    kept, left_out = [], []
    for run in runs:
        why = not_finished(run)
        if why is None:
            kept.append(run)
        else:
            left_out.append((run, why))
    return kept, left_out


def evaluate_claims(runs: list[Run]) -> list[Claim]:
    """Every rule, judged on the finished runs only (see finished_runs)."""
    finished = finished_runs(runs)[0]
    return [evaluate(rule, finished) for rule in RULES.values()]
