"""make figures at the smoke profile, and the report drawn for any sweep from saved files only."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsmexp.records.sweeps import load_runs
from dsmexp.studies.paper import figures
from dsmexp.studies.paper.claims import INCONCLUSIVE, MIXED, NOT_SUPPORTED, SUPPORTED
from dsmexp.studies.paper.report import build_report
from dsmexp.studies.paper.report import main as report_main
from dsmexp.studies.paper.rules import RULES
from dsmexp.train import trainer
from tests.conftest import TINY, run_cli
from tests.sweep_jobs import sweep_job

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "dsmexp" / "studies" / "paper" / "make.py"
FIGURES = [f"figure{n}.{ext}" for n in range(1, 5) for ext in ("png", "pdf")]


@pytest.fixture(scope="module")
def smoke_figures(tmp_path_factory):
    """`make figures PROFILE=smoke SEEDS=2`, run in a scratch directory."""
    cwd = tmp_path_factory.mktemp("figures")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--profile", "smoke", "--seeds", "2", "--launcher",
                           "basic"], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd


def claim_rows(report: str) -> list[list[str]]:
    """The claims table's body as cells, split on unescaped pipes as a Markdown renderer would."""
    section = report.split("## Claims")[1].split("## Rules")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert all(len(row) == 6 for row in rows), rows
    return rows[1:]


def test_smoke_profile_draws_every_figure_and_a_report_with_numbers_per_seed(smoke_figures):
    out = smoke_figures / "outputs" / "figures" / "smoke"
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    report = (out / "report.md").read_text()
    assert report.splitlines()[2].startswith("> **Smoke profile: not evidence.**")  # right under the title
    rows = claim_rows(report)
    assert len(rows) == len(RULES) >= 8
    for row in rows:
        numbers, seeds, verdict = row[3], row[4], row[5].strip("*")
        assert re.search(r"\d", numbers), row
        assert re.match(r"[0-2]/2", seeds), row
        assert verdict in (SUPPORTED, NOT_SUPPORTED, MIXED, INCONCLUSIVE)
        passed = int(seeds[0])
        if verdict != INCONCLUSIVE:  # the verdict follows the tally
            assert verdict == {2: SUPPORTED, 0: NOT_SUPPORTED}.get(passed, MIXED), row
        if verdict == MIXED:
            assert "fails for seed" in seeds
    assert rows[0][5] == SUPPORTED and rows[0][4] == "2/2"  # DSM - DSM-S is the constant on every step
    assert re.search(r"worst [\d.e-]+ \[[\d.e-]+, [\d.e-]+\]", rows[0][3])  # median [min, max]
    for n in range(1, 5):
        assert f"![Figure {n}](figure{n}.png)" in report
    assert "M = 4 noise samples" in report and "18 runs" in report and "2 seeds (0, 1)" in report
    for rule in RULES.values():  # the rules table prints every threshold
        assert all(f"{k} = {v:g}" in report for k, v in rule.thresholds.items()), rule.name


def test_multi_seed_figures_draw_a_median_line_and_a_min_max_band(smoke_figures):
    runs = load_runs(smoke_figures / "outputs" / "sweeps" / "figures-smoke")
    assert sorted({r.seed for r in runs}) == [0, 1]
    fig = figures.figure2(runs, ("dsm_s", "ism"))
    top = fig.axes[0]  # DSM-S fitting terms: one line and one band per sigma
    assert len(top.lines) == 4 and len(top.collections) == 4
    group = [r for r in runs if r.loss == "dsm_s" and r.sigma == 1e-3]
    steps, median, low, high = figures.seed_curve(group, "fit_dsm")
    both = np.stack([r.metrics["fit_dsm"] for r in group])
    np.testing.assert_allclose(median, both.mean(0))  # the median of two is their mean
    np.testing.assert_array_equal(low, both.min(0))
    np.testing.assert_array_equal(top.lines[1].get_ydata(), median)


def test_figures_come_from_saved_files_only_and_rebuild_byte_for_byte(smoke_figures, tmp_path, monkeypatch):
    sweep = smoke_figures / "outputs" / "sweeps" / "figures-smoke"
    for checkpoint in sweep.rglob("checkpoint.pt"):
        checkpoint.unlink()  # no model weights left to evaluate

    def no_training(*args, **kwargs):
        raise AssertionError("the report must not train")
    monkeypatch.setattr(trainer, "run", no_training)
    monkeypatch.setattr(trainer.Trainer, "fit", no_training)
    drawn = smoke_figures / "outputs" / "figures" / "smoke"  # by `make figures`, right after training
    build_report(sweep, tmp_path)
    for name in [*FIGURES, "report.md"]:
        assert (tmp_path / name).read_bytes() == (drawn / name).read_bytes(), name


def test_report_command_works_for_any_sweep(tmp_path, monkeypatch, capsys):
    run_cli("-m", *TINY, "loss=dsm,ism", "sigma=0.05,0.2", "hydra.sweep.dir=outputs/mine", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    report_main(["outputs/mine", "--out", "outputs/fig"])  # `python -m dsmexp.report ...`, in-process
    assert "report.md" in capsys.readouterr().out
    report = (tmp_path / "outputs" / "fig" / "report.md").read_text()
    assert "not evidence" not in report  # profile default: no smoke caveat
    verdicts = [row[5].strip("*") for row in claim_rows(report)]
    assert verdicts[0] == SUPPORTED and verdicts.count(INCONCLUSIVE) >= 4  # no paper grid here
    for name in FIGURES:
        assert (tmp_path / "outputs" / "fig" / name).exists()


def test_report_command_on_sweeps_of_other_objectives_or_custom_models(tmp_path, capsys):
    """Sweeps the paper is not about still get a report; claims that need ISM or DSM runs say so."""
    sweep_job(tmp_path / "vr", "loss=ssm_vr", "sigma=0.01")
    sweep_job(tmp_path / "custom", "loss=ism", "sigma=0.01", "model=custom",
              "model.target=tests.user_modules.ResidualMLP", "+model.kwargs.width=8")
    for name in ("vr", "custom"):
        report_main([str(tmp_path / name), "--out", str(tmp_path / f"fig-{name}")])
        assert "report.md" in capsys.readouterr().out
    vr = (tmp_path / "fig-vr" / "report.md").read_text()
    assert "The 1 run(s) trained with ssm_vr enter only the rules that use every run" in vr
    assert "| ssm_vr | 0.01 | 0 | completed | 6 |" in vr
    assert "needs an ISM run at sigma = 0.01" in vr
    custom = (tmp_path / "fig-custom" / "report.md").read_text()
    assert "- model: custom model tests.user_modules.ResidualMLP(width=8);" in custom
    for name in FIGURES:
        assert (tmp_path / "fig-vr" / name).exists() and (tmp_path / "fig-custom" / name).exists()


def test_report_out_naming_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep_job(sweep, "loss=ism", "sigma=0.01")
    out = tmp_path / "notes.md"
    out.write_text("mine")
    for target in (out, out / "figures"):
        with pytest.raises(SystemExit) as stop:
            report_main([str(sweep), "--out", str(target)])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.endswith(f"--out={target}: {out} is a file, not a directory; nothing was written "
                            "(name a directory, new or existing)")
    assert out.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "sweep"]
