"""Figures and a claims report for any sweep, from its saved files:

    python -m dsmexp.report SWEEP_DIR [--out DIR]

Writes figure1..figure4 (.png and .pdf) and report.md into DIR (default outputs/figures/<sweep name>).
Figures 1 and 3 need the sigma = 0.01 runs of the paper's grid; Figures 2 and 4 and the run table work
for any sweep over loss and sigma. Missing runs leave a note in a panel and make a claim inconclusive.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from dsmexp import figures
from dsmexp.claims import RULES, SUPPORTED, Claim, evaluate_claims
from dsmexp.sweeps import Run, scan_runs
from dsmexp.trackers import figures_to_tensorboard


def losses_in(runs: list[Run]) -> tuple[str, ...]:
    """The trained objectives present, in the paper's order (DSM variants first)."""
    return tuple(loss for loss in ("dsm", "dsm_s", "ism") if any(r.loss == loss for r in runs))


def draw_figures(runs: list[Run], out_dir: Path) -> list[Path]:
    losses = losses_in(runs)
    drawn = {"figure1": figures.figure1(runs), "figure2": figures.figure2(runs, losses),
             "figure3": figures.figure3(runs), "figure4": figures.figure4(runs, losses)}
    return [path for name, fig in drawn.items() for path in figures.save(fig, out_dir, name)]


def settings_lines(runs: list[Run], sweep_dir: Path) -> list[str]:
    """The shared settings of the sweep (from the first run's saved config) as Markdown bullets."""
    cfg, summary = runs[0].config, runs[0].summary
    model, opt, ds = cfg["model"], cfg["optimizer"], cfg["dataset"]
    seeds = sorted({r.seed for r in runs})
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1
                 else f"{len(seeds)} seeds ({', '.join(map(str, seeds))})")
    threads = sorted({str(r.summary.get("threads")) for r in runs if r.summary.get("threads") is not None})
    return [
        f"- sweep: `{sweep_dir.name}` ({len(runs)} runs; profile `{cfg.get('profile_name', 'default')}`)",
        f"- data: {ds['name']}, N = {ds['n_samples']} in full batch, M = {cfg['noise_samples']} noise "
        f"samples per point, {cfg['steps']} steps, {seed_text}",
        f"- model: MLP {model['hidden']} with {model['activation']}; "
        f"optimiser {opt['name']} lr {opt['lr']:g} weight decay {opt.get('weight_decay', 0):g}",
        f"- device: {summary.get('device', '?')}; torch threads per run: {', '.join(threads) or '?'}; "
        f"torch {summary.get('versions', {}).get('torch', '?')}",
    ]


def claims_table(claims: list[Claim]) -> list[str]:
    lines = ["| claim | paper says | measured | numbers | seeds | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in claims:
        verdict = f"**{c.verdict}**" if c.verdict != SUPPORTED else c.verdict
        cells = (c.rule.claim, c.rule.paper, c.rule.measure, c.numbers, c.tally, verdict)
        lines.append("| " + " | ".join(_cell(t) for t in cells) + " |")
    return lines


def rules_table() -> list[str]:
    """The verdict rules, fixed before any number is seen, with their thresholds."""
    lines = ["| rule | a seed satisfies it when | thresholds |", "| --- | --- | --- |"]
    for rule in RULES.values():
        thresholds = ", ".join(f"{k} = {v:g}" for k, v in rule.thresholds.items())
        lines.append("| " + " | ".join(_cell(t) for t in (rule.name, rule.test, thresholds)) + " |")
    return lines


def _cell(text: str) -> str:
    """Markdown table cell text: |x| norms would otherwise end the cell."""
    return text.replace("|", "\\|")


def cosine_note(runs: list[Run], claims: list[Claim]) -> list[str]:
    """Why the ISM/DSM gradient cosine depends on M, with the measured medians."""
    claim = next(c for c in claims if c.rule.name == "gradient_agreement")
    cfg = runs[0].config
    m, n = int(cfg["noise_samples"]), int(cfg["dataset"]["n_samples"])
    return [
        "## The gradient cosine and the number of noise samples", "",
        "The DSM-S gradient is the ISM gradient plus zero-mean noise (Prop. 2 holds for the gradients "
        "too). That noise is an average of M N terms of size |ds/dtheta| |eps| / sigma, so its norm scales "
        "as 1 / (sigma sqrt(M N)), while the ISM gradient itself shrinks as training converges. "
        "The cosine is therefore about g / sqrt(g^2 + c^2 / (sigma^2 M N)) for a true gradient of norm g and "
        "a per-point noise scale c: it falls as sigma shrinks and as the model nears its optimum, and "
        "rises with M. Quadrupling M halves the noise. A low cosine at small M is the estimator's noise, "
        "not a disagreement of the objectives in expectation. Late in training the ISM gradient approaches "
        "zero near ISM's own optimum on these M N points, while DSM-S's finite-sample optimum on the same "
        "points lies elsewhere, so the cosine can also drift below zero (Figure 3, right); a larger M "
        "brings the two optima together.", "",
        f"Here M = {m}, N = {n}, M N = {m * n}: median cosine over steps during ISM training "
        f"(seeds: median [min, max]): {claim.numbers}.", ""]


def runs_table(runs: list[Run]) -> list[str]:
    lines = ["| loss | sigma | seed | status | steps | final esm_data | final esm | median grad norm "
             "| wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        grad = figures.GRAD_COLUMN[r.loss]
        cells = [r.loss, f"{r.sigma:g}", str(r.seed), r.status, str(len(r.metrics["step"])),
                 _num(figures.final_value(r, "esm_data")), _num(figures.final_value(r, "esm")),
                 _num(float(np.nanmedian(r.metrics[grad]))), _num(r.summary.get("wall_time_s", math.nan))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def unreadable_lines(unreadable: list[tuple[Path, str]], sweep_dir: Path) -> list[str]:
    """The runs left out of everything above, each with why (missing, cut short, not dsmexp's files)."""
    if not unreadable:
        return []
    lines = ["## Runs not read", "", f"{len(unreadable)} run(s) under the sweep could not be read and are "
             "left out of the claims, figures and table above:", ""]
    for run_dir, why in unreadable:
        rel = run_dir.relative_to(sweep_dir) if run_dir.is_relative_to(sweep_dir) else run_dir
        lines.append(f"- `{rel}`: {why}")
    return lines + [""]


def _num(x: float | None) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4g}"


def build_report(sweep_dir: Path, out_dir: Path, provenance: list[str] | None = None) -> Path:
    """Draw every figure and write report.md for the runs under sweep_dir; return the report's path.

    `provenance` lines (command, commit, wall time, ...) are printed under the settings.
    """
    runs, unreadable = scan_runs(sweep_dir)
    if not runs:
        raise SystemExit(f"{sweep_dir}: no run with a readable metrics.csv under it"
                         + "".join(f"\n  {why}" for _, why in unreadable))
    images = draw_figures(runs, out_dir)
    figures_to_tensorboard(sweep_dir, images)  # beside the jobs' curves when they logged to TensorBoard
    claims = evaluate_claims(runs)
    lines = ["# Comparing implicit and denoising score matching: claims checked", "",
             *settings_lines(runs, sweep_dir), *(provenance or []), "", "## Claims", "",
             *claims_table(claims), "",
             "Each claim is evaluated separately for every seed; the numbers are the value for one seed, or "
             "the median [min, max] over seeds. Verdict: supported when every seed satisfies the rule, not "
             "supported when none does, mixed otherwise (the failing seeds are named), inconclusive when "
             "the runs a rule needs are missing.", "",
             "## Rules", "", *rules_table(), "",
             *cosine_note(runs, claims),
             "## Figures", ""]
    for n in range(1, 5):
        lines += [f"![Figure {n}](figure{n}.png)", ""]
    lines += ["## Runs", "", *runs_table(runs), ""]
    lines += unreadable_lines(unreadable, sweep_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dsmexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (e.g. outputs/sweeps/figures-quick)")
    parser.add_argument("--out", type=Path, help="where to write figures and report.md")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    out = args.out or Path("outputs") / "figures" / args.sweep_dir.name
    report = build_report(args.sweep_dir, out)
    print(f"{report} and figures 1-4 (png, pdf) in {out}")


if __name__ == "__main__":
    main()
