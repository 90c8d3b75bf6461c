"""Verdicts over seeds: each seed judged by the same fixed rule, then combined; only finished runs judged."""

import os
from pathlib import Path

import numpy as np
import pytest

from dsmexp.records.runlock import RunLock
from dsmexp.records.sweeps import Run, load_runs
from dsmexp.studies.paper import claims
from dsmexp.studies.paper.claims import (
    INCONCLUSIVE,
    MIXED,
    NOT_SUPPORTED,
    SUPPORTED,
    evaluate,
    summarise,
)
from dsmexp.studies.paper.report import build_report
from dsmexp.studies.paper.rules import RULES
from tests.sweep_jobs import stop_early, sweep_job


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


@pytest.fixture(scope="module")
def unfinished_sweep(tmp_path_factory):
    """ISM at sigma = 0.01 for four seeds: one finished, one still training (15 of 40 steps, its lock
    held), one diverged (lr 1e30), one interrupted (killed after 3 steps)."""
    sweep = tmp_path_factory.mktemp("unfinished") / "sweep"
    sweep_job(sweep, "loss=ism", "seed=0")
    running = sweep_job(sweep, "loss=ism", "seed=1", "steps=40")
    stop_early(running, 15)
    sweep_job(sweep, "loss=ism", "seed=2", "optimizer=sgd", "optimizer.lr=1e30")
    stop_early(sweep_job(sweep, "loss=ism", "seed=3"), 3)
    with RunLock(running):  # as the process still training it holds it
        yield sweep


def test_claims_judge_finished_runs_only_and_say_which_were_left_out(unfinished_sweep):
    runs = load_runs(unfinished_sweep)
    assert len(runs) == 4
    cosine = next(c for c in claims.evaluate_claims(runs) if c.rule.name == "gradient_agreement")
    assert list(cosine.seeds) == [0] and cosine.tally in ("0/1", "1/1")  # was over all four seeds
    finished, left_out = claims.finished_runs(runs)
    assert [r.seed for r in finished] == [0]
    why = {r.seed: text for r, text in left_out}
    assert why[1].startswith(f"running (15 of 40 steps logged; process {os.getpid()} is training it")
    assert why[2].startswith("diverged (at step ")
    assert why[3].startswith("interrupted (3 of 6 steps logged; no summary.json")


@pytest.mark.slow
def test_the_report_lists_runs_left_out_and_settings_that_differ(unfinished_sweep, tmp_path):
    report = build_report(unfinished_sweep, tmp_path / "figures").read_text()
    section = report.split("## Runs left out of the claims")[1].split("## Rules")[0]
    assert "3 run(s) did not finish" in section
    for run_dir, start in (("loss=ism,seed=1,steps=40", "running"), ("loss=ism,seed=3", "interrupted"),
                           ("loss=ism,seed=2,optimizer=sgd,optimizer.lr=1e30", "diverged")):
        assert f"- `{run_dir}`: {start} (" in section
    settings = report.split("## Claims")[0]
    assert "(4 runs, 1 finished and judged by the claims;" in settings
    assert "optimiser [differs: adamw, sgd] lr [differs: 0.001, 1e+30]" in settings
    assert "[differs: 6, 40] steps" in settings and "lr 1e+30" not in settings
