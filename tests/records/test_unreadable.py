"""Runs that cannot be read are listed with why, by runs.csv, the sweep loader and the report; never
dropped in silence and never a crash."""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, sweeps, tables
from dsmexp.studies.paper.report import build_report
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

GRID = [("ism", "0.01"), ("dsm_s", "0.01"), ("ism", "0.1"), ("dsm_s", "0.1"), ("ism", "0")]


class Planted:
    """Unpickling this makes a directory: the test sees whether a reader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def plant_pickle(run_dir: Path) -> Path:
    """Replace score_field.npz by one with a pickled object in it; the directory unpickling would make."""
    marker = run_dir.parent / "code-ran"
    field = dict(np.load(run_dir / "score_field.npz"))
    field["data"] = np.array([Planted(marker)], dtype=object)
    np.savez(run_dir / "score_field.npz", **field)  # numpy pickles object arrays when saving
    return marker


@pytest.fixture(scope="module")
def broken_sweep(tmp_path_factory):
    """Four finished runs laid out as a sweep; three then broken in the ways a user meets."""
    sweep = tmp_path_factory.mktemp("broken") / "sweep"
    for loss, sigma in GRID:
        overrides = [f"loss={loss}", f"sigma={sigma}"]
        cfg = make_cfg(*TINY, "kernel=torch", *overrides)
        run_dir = sweep / ",".join(overrides)
        assert trainer.run(cfg, run_dir) == "completed"
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    (sweep / "loss=ism,sigma=0.1" / "metrics.csv").unlink()
    metrics = sweep / "loss=dsm_s,sigma=0.1" / "metrics.csv"
    metrics.write_text(metrics.read_text()[:1500])  # cut short in the middle of a row
    (sweep / "loss=dsm_s,sigma=0.01" / "summary.json").write_text('{"status": "comp')
    plant_pickle(sweep / "loss=ism,sigma=0")
    for name, change in BAD_SUMMARY.items():  # a finished run's copy, its summary.json then edited
        shutil.copytree(sweep / "loss=ism,sigma=0.01", sweep / name)
        path = sweep / name / "summary.json"
        summary = json.loads(path.read_text())
        change(summary)
        path.write_text(json.dumps(summary))
    return sweep


BAD_SUMMARY = {
    "config-empty": lambda s: s.update(config={}),
    "config-no-loss": lambda s: s["config"].pop("loss"),
    "steps-many": lambda s: s.update(steps_done="many"),
}


WHY = {
    "loss=ism,sigma=0.1": "metrics.csv: missing (status completed)",
    "loss=dsm_s,sigma=0.1": "rows, not steps 0..5 as summary.json reports for a completed run",
    "loss=dsm_s,sigma=0.01": "summary.json: cannot be read (not valid JSON",
    "loss=ism,sigma=0": "score_field.npz: cannot be read (ValueError: Object arrays cannot be loaded when "
                        "allow_pickle=False)",
    "config-empty": "summary.json: cannot be read (config is {}, not the run's settings)",
    "config-no-loss": "summary.json: cannot be read (config lacks loss.name)",
    "steps-many": "summary.json: cannot be read (steps_done is 'many', not a whole number of steps)",
}


def test_the_loader_and_runs_csv_say_which_runs_cannot_be_read_and_why(broken_sweep, caplog, capsys):
    runs, unreadable = sweeps.scan_runs(broken_sweep)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert all(any(f"{name}/" in w and why in w for w in warned) for name, why in WHY.items()), warned
    assert [r.run_dir.name for r in runs] == ["loss=ism,sigma=0.01"]
    assert {d.name for d, _ in unreadable} == set(WHY)
    for run_dir, why in unreadable:
        assert WHY[run_dir.name] in why and str(run_dir) in why
    assert [r.run_dir for r in sweeps.load_runs(broken_sweep)] == [r.run_dir for r in runs]
    caplog.clear()
    tables.main([str(broken_sweep)])  # `python -m dsmexp.sweeps SWEEP_DIR`: a warning per run, then the table
    assert capsys.readouterr().out.strip() == f"{broken_sweep / 'runs.csv'}: {len(WHY) + 1} jobs"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == len(WHY) and all(any(why in w for w in warned) for why in WHY.values())
    with (broken_sweep / "runs.csv").open() as f:
        rows = {r["run_dir"]: r for r in csv.DictReader(f)}
    assert rows["loss=ism,sigma=0.01"]["status"] == "completed"
    for name, why in WHY.items():
        assert rows[name]["status"] == "unreadable" and why in rows[name]["error"], rows[name]
    assert rows["loss=ism,sigma=0.1"]["loss"] == "ism"  # the settings are still listed
    assert not (broken_sweep / "code-ran").exists()


def test_a_pickled_score_field_is_one_line_naming_it_and_never_unpickled(tmp_path):
    run_dir = tmp_path / "run"
    assert trainer.run(make_cfg(*TINY, "kernel=torch", "eval_samples=200", "loss=ism", "sigma=0"),
                        run_dir) == "completed"
    marker = plant_pickle(run_dir)
    path = run_dir / "score_field.npz"
    for read in (artifacts.read_score_field, artifacts.check_score_field,
                 lambda p: artifacts.check_run_files(p.parent)):  # the check before a run trains
        with pytest.raises(RunFileError) as err:
            read(path)
        assert str(err.value).splitlines() == [str(err.value)] and str(path) in str(err.value)
        assert "allow_pickle=False" in str(err.value)
    assert not marker.exists()


@pytest.mark.slow
def test_the_report_lists_every_run_it_could_not_read(broken_sweep, tmp_path):
    report = build_report(broken_sweep, tmp_path / "figures").read_text()
    section = report.split("## Runs not read")[1]
    assert f"{len(WHY)} run(s) under the sweep could not be read" in section
    for name, why in WHY.items():
        line = next(line for line in section.splitlines() if line.startswith(f"- `{name}`"))
        assert why in line
    assert "| ism | 0.01 | 0 | completed | 6 |" in report.split("## Runs not read")[0]
