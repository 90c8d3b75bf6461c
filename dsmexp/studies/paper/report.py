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

from dsmexp.core.objectives.registry import OBJECTIVES
from dsmexp.records.sweeps import Run, scan_runs
from dsmexp.studies.markdown import smoke_caveat
from dsmexp.studies.paper import figures
from dsmexp.studies.paper.claims import SUPPORTED, Claim, evaluate_claims, finished_runs
from dsmexp.studies.paper.rules import RULES
from dsmexp.train.tracking import figures_to_tensorboard

PAPER_LOSSES = ("dsm", "dsm_s", "ism")  # the objectives the figures and claims are about


def losses_in(runs: list[Run]) -> tuple[str, ...]:
    """The paper's objectives present, in the paper's order (DSM variants first); DSM-S and ISM when none
    is (their panels then say that the sweep has no such run)."""
    return tuple(loss for loss in PAPER_LOSSES if any(r.loss == loss for r in runs)) or ("dsm_s", "ism")


def draw_figures(runs: list[Run], out_dir: Path) -> list[Path]:
    losses = losses_in(runs)
    drawn = {"figure1": figures.figure1(runs), "figure2": figures.figure2(runs, losses),
             "figure3": figures.figure3(runs), "figure4": figures.figure4(runs, losses)}
    return [path for name, fig in drawn.items() for path in figures.save(fig, out_dir, name)]


def settings_lines(runs: list[Run], sweep_dir: Path, judged: int | None = None) -> list[str]:
    """The settings of the sweep's runs as Markdown bullets; a setting the runs do not share is given as
    `[differs: a, b]` with every value found. `judged`: how many runs the claims use."""
    seeds = sorted({r.seed for r in runs})
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1
                 else f"{len(seeds)} seeds ({', '.join(map(str, seeds))})")
    threads = sorted({str(r.summary.get("threads")) for r in runs if r.summary.get("threads") is not None})
    v = {name: _setting(runs, value) for name, value in SETTINGS.items()}
    judged_text = "" if judged is None else f", {judged} finished and judged by the claims"
    return [
        f"- sweep: `{sweep_dir.name}` ({len(runs)} runs{judged_text}; profile `{v['profile']}`)",
        f"- data: {v['dataset']}, N = {v['N']} in full batch, M = {v['M']} noise samples per point "
        f"({v['noise']} noise kernel), {v['steps']} steps, {seed_text}",
        f"- model: {v['model']}; optimiser {v['optimizer']} lr {v['lr']} weight decay {v['weight_decay']}",
        f"- device: {v['device']}; torch threads per run: {', '.join(threads) or '?'}; torch {v['torch']}",
    ]


def noise_text(noise: dict) -> str:
    """A run's noise kernel in words: gaussian (runs from before noise.kernel existed too), laplace,
    student_t (df 3)."""
    kernel = noise.get("kernel", "gaussian")
    return f"student_t (df {noise.get('df'):g})" if kernel == "student_t" else kernel


def model_text(model: dict) -> str:
    """A run's score model in words: `MLP [16, 32] with tanh`, or the class a model=custom run built."""
    if model.get("name") == "mlp":
        return f"MLP {model.get('hidden')} with {model.get('activation')}"
    kwargs = ", ".join(f"{k}={v}" for k, v in (model.get("kwargs") or {}).items())
    target = model.get("target")
    return f"{model.get('name', '?')} model {target}({kwargs})" if target else str(model.get("name", "?"))


SETTINGS = {  # what settings_lines prints, read from each run's saved config and summary
    "profile": lambda r: r.config.get("profile_name", "default"),
    "dataset": lambda r: r.config["dataset"]["name"],
    "N": lambda r: r.config["dataset"]["n_samples"],
    "M": lambda r: r.config["noise_samples"],
    "noise": lambda r: noise_text(r.config.get("noise") or {}),
    "steps": lambda r: r.config["steps"],
    "model": lambda r: model_text(r.config.get("model") or {}),
    "optimizer": lambda r: r.config["optimizer"]["name"],
    "lr": lambda r: r.config["optimizer"]["lr"],
    "weight_decay": lambda r: r.config["optimizer"].get("weight_decay", 0),
    "device": lambda r: r.summary.get("device", "?"),
    "torch": lambda r: r.summary.get("versions", {}).get("torch", "?"),
}


def _setting(runs: list[Run], value) -> str:
    """value(run) as text when every run has the same one, else `[differs: ...]` listing each value."""
    found: list = []
    for run in runs:
        try:
            v = value(run)
        except (KeyError, TypeError):
            v = "?"
        if v not in found:
            found.append(v)
    found = [v for v in found if v != "?"] or found  # runs that have not written summary.json yet
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in found):
        found.sort()
    texts = list(dict.fromkeys(f"{v:g}" if isinstance(v, float) else str(v) for v in found))
    return texts[0] if len(texts) == 1 else f"[differs: {', '.join(texts)}]"


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
    """Why the ISM/DSM gradient cosine depends on M, with the measured medians (M and N of the runs the
    claims judge)."""
    claim = next(c for c in claims if c.rule.name == "gradient_agreement")
    ms = {int(r.config["noise_samples"]) for r in runs}
    ns = {int(r.config["dataset"]["n_samples"]) for r in runs}
    if len(ms) == len(ns) == 1:
        sizes = f"M = {min(ms)}, N = {min(ns)}, M N = {min(ms) * min(ns)}"
    else:
        sizes = (f"M = {_setting(runs, lambda r: int(r.config['noise_samples']))}, "
                 f"N = {_setting(runs, lambda r: int(r.config['dataset']['n_samples']))}")
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
        f"Here {sizes}: median cosine over steps during ISM training "
        f"(seeds: median [min, max]): {claim.numbers}.", ""]


def runs_table(runs: list[Run]) -> list[str]:
    lines = ["| loss | sigma | seed | status | steps | final esm_data | final esm | median grad norm "
             "| wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        grad = OBJECTIVES[r.loss].grad_norm_column if r.loss in OBJECTIVES else "grad_norm_ism"
        cells = [r.loss, f"{r.sigma:g}", str(r.seed), r.status, str(len(r.metrics["step"])),
                 _num(figures.final_value(r, "esm_data")), _num(figures.final_value(r, "esm")),
                 _num(float(np.nanmedian(r.metrics[grad]))), _num(r.summary.get("wall_time_s", math.nan))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def other_losses_lines(runs: list[Run]) -> list[str]:
    """A note on runs trained with objectives the paper's claims are not about (ssm, ssm_vr, fd_ssm)."""
    others = sorted({r.loss for r in runs} - set(PAPER_LOSSES))
    if not others:
        return []
    count = sum(r.loss in others for r in runs)
    return [f"The claims are about ISM, DSM and DSM-S. The {count} run(s) trained with "
            f"{', '.join(others)} enter only the rules that use every run (dsm_constant: all runs with "
            "sigma > 0; large_sigma_bias: the best run at sigma <= 1e-2); the rules that need ISM, DSM or "
            "DSM-S runs say so in the seeds column.", ""]


def left_out_lines(left_out: list[tuple[Run, str]], sweep_dir: Path) -> list[str]:
    """The runs read but not judged by the claims (not finished), each with why."""
    return _run_list("Runs left out of the claims", f"{len(left_out)} run(s) did not finish, so the claims "
                     "above do not use them (the figures and the run table below still show them):",
                     [(run.run_dir, why) for run, why in left_out], sweep_dir)


def unreadable_lines(unreadable: list[tuple[Path, str]], sweep_dir: Path) -> list[str]:
    """The runs left out of everything above, each with why (missing, cut short, not dsmexp's files)."""
    return _run_list("Runs not read", f"{len(unreadable)} run(s) under the sweep could not be read and are "
                     "left out of the claims, figures and table above:", unreadable, sweep_dir)


def _run_list(title: str, intro: str, runs: list[tuple[Path, str]], sweep_dir: Path) -> list[str]:
    """A report section listing run directories (relative to the sweep) with why; nothing when none."""
    if not runs:
        return []
    lines = [f"## {title}", "", intro, ""]
    for run_dir, why in runs:
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
    finished, left_out = finished_runs(runs)
    claims = evaluate_claims(finished)
    lines = ["# Comparing implicit and denoising score matching: claims checked", "",
             *smoke_caveat(r.config.get("profile_name", "default") for r in runs),
             *settings_lines(runs, sweep_dir, len(finished)), *(provenance or []), "", "## Claims", "",
             *claims_table(claims), "",
             "Each claim is evaluated separately for every seed, on the runs that finished all their steps; "
             "the numbers are the value for one seed, or the median [min, max] over seeds. Verdict: "
             "supported when every seed satisfies the rule, not supported when none does, mixed otherwise "
             "(the failing seeds are named), inconclusive when the runs a rule needs are missing.", "",
             *other_losses_lines(finished), *left_out_lines(left_out, sweep_dir),
             "## Rules", "", *rules_table(), "",
             *cosine_note(finished or runs, claims),
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
    parser = argparse.ArgumentParser(prog="python -m dsmexp.report",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (e.g. outputs/sweeps/figures-quick)")
    parser.add_argument("--out", type=Path, help="where to write figures and report.md")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir}: not a directory")
    out = args.out or Path("outputs") / "figures" / args.sweep_dir.name
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        parser.error(f"--out={out}: {blocker} is a file, not a directory; nothing was written (name a "
                     "directory, new or existing)")
    report = build_report(args.sweep_dir, out)
    print(f"{report} and figures 1-4 (png, pdf) in {out}")


if __name__ == "__main__":
    main()
