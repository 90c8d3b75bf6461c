"""Verdicts over seeds: each seed judged by the same fixed rule, then combined."""

from pathlib import Path

import numpy as np

from dsmexp.claims import INCONCLUSIVE, MIXED, NOT_SUPPORTED, RULES, SUPPORTED, evaluate, summarise
from dsmexp.sweeps import Run


def ism_run(seed: int, cosine: float, sigma: float = 0.01) -> Run:
    steps = np.arange(5)
    metrics = {"step": steps, "grad_cos": np.full(5, cosine)}
    return Run(Path(f"s{seed}"), "ism", sigma, "completed", {"seed": seed}, metrics, {})


def test_every_seed_is_judged_and_the_verdict_counts_them():
    rule = RULES["gradient_agreement"]
    threshold = rule.thresholds["min_cosine"]
    above, below = threshold + 0.2, threshold - 0.2
    all_pass = evaluate(rule, [ism_run(s, above) for s in range(3)])
    assert (all_pass.verdict, all_pass.tally) == (SUPPORTED, "3/3")
    none = evaluate(rule, [ism_run(s, below) for s in range(2)])
    assert (none.verdict, none.tally) == (NOT_SUPPORTED, "0/2")
    mixed = evaluate(rule, [ism_run(0, above), ism_run(1, below), ism_run(2, above), ism_run(3, below)])
    assert mixed.verdict == MIXED and mixed.tally == "2/4 (fails for seeds 1, 3)"
    missing = evaluate(rule, [ism_run(0, above, sigma=0.1)])
    assert missing.verdict == INCONCLUSIVE and "needs an ISM run at sigma = 0.01" in missing.tally


def test_numbers_are_the_median_and_range_over_seeds():
    rule = RULES["gradient_agreement"]
    claim = evaluate(rule, [ism_run(s, c) for s, c in enumerate((0.9, 0.6, 0.7))])
    assert claim.numbers == "median cosine 0.7 [0.6, 0.9]"
    assert summarise({0: claim.seeds[0]}) == "median cosine 0.9"
