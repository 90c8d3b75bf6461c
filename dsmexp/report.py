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
from dsmexp.claims import SUPPORTED, Claim, evaluate_claims
from dsmexp.sweeps import Run, load_runs
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
    return [
        f"- sweep: `{sweep_dir}` ({len(runs)} runs; profile `{cfg.get('profile_name', 'default')}`)",
        f"- data: {ds['name']}, N = {ds['n_samples']} in full batch, M = {cfg['noise_samples']} noise "
        f"samples per point, {cfg['steps']} steps, seed {cfg['seed']}",
        f"- model: MLP {model['hidden']} with {model['activation']}; "
        f"optimiser {opt['name']} lr {opt['lr']:g}",
        f"- device: {summary.get('device', '?')}; torch {summary.get('versions', {}).get('torch', '?')}",
    ]


def claims_table(claims: list[Claim]) -> list[str]:
    lines = ["| claim | measured (rule) | numbers | verdict |", "| --- | --- | --- | --- |"]
    for c in claims:
        verdict = f"**{c.verdict}**" if c.verdict != SUPPORTED else c.verdict
        lines.append("| " + " | ".join(_cell(t) for t in (c.claim, c.rule, c.numbers, verdict)) + " |")
    return lines


def _cell(text: str) -> str:
    """Markdown table cell text: |x| norms would otherwise end the cell."""
    return text.replace("|", "\\|")


def runs_table(runs: list[Run]) -> list[str]:
    lines = ["| loss | sigma | status | steps | final esm_data | final esm | median grad norm | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        grad = figures.GRAD_COLUMN[r.loss]
        cells = [r.loss, f"{r.sigma:g}", r.status, str(len(r.metrics["step"])),
                 _num(figures.final_value(r, "esm_data")), _num(figures.final_value(r, "esm")),
                 _num(float(np.nanmedian(r.metrics[grad]))), _num(r.summary.get("wall_time_s", math.nan))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _num(x: float | None) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4g}"


def build_report(sweep_dir: Path, out_dir: Path) -> Path:
    """Draw every figure and write report.md for the runs under sweep_dir; return the report's path."""
    runs = load_runs(sweep_dir)
    if not runs:
        raise SystemExit(f"{sweep_dir}: no run with a metrics.csv under it")
    images = draw_figures(runs, out_dir)
    figures_to_tensorboard(sweep_dir, images)  # beside the jobs' curves when they logged to TensorBoard
    claims = evaluate_claims(runs)
    lines = ["# Comparing implicit and denoising score matching: claims checked", "",
             *settings_lines(runs, sweep_dir), "", "## Claims", "", *claims_table(claims), "",
             "Each verdict follows the rule in the second column, computed from the runs listed below.", "",
             "## Figures", ""]
    for n in range(1, 5):
        lines += [f"![Figure {n}](figure{n}.png)", ""]
    lines += ["## Runs", "", *runs_table(runs), ""]
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
