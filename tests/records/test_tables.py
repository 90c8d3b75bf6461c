"""The pandas API (dsmexp.load_metrics, load_runs, load_sweep_metrics), runs.csv built from it, and the
README's notebook example run against a real sweep."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import dsmexp
from dsmexp.records import metrics_file, tables
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

JOBS = {"loss=ism,sigma=0": ("loss=ism", "sigma=0"), "loss=dsm_s,sigma=0.01": ("loss=dsm_s", "sigma=0.01")}
SKIPPED = {"overrides": ["loss=dsm_s", "sigma=0"], "subdir": "loss=dsm_s,sigma=0", "skipped": "sigma=0 ..."}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two tiny jobs trained in-process and laid out as Hydra does, plus one skipped grid point."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    for subdir, overrides in JOBS.items():
        cfg = make_cfg(*TINY, "kernel=torch", "eval_samples=200", "eval_every=2", *overrides)
        run_dir = sweep_dir / subdir
        (run_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")
        assert trainer.run(cfg, run_dir) == "completed"
    plan = [{"overrides": list(o), "subdir": s} for s, o in JOBS.items()] + [SKIPPED]
    (sweep_dir / "jobs.json").write_text(json.dumps(plan))
    tables.write_runs_table(sweep_dir)
    return sweep_dir


def raw_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open() as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_load_metrics_is_metrics_csv_with_int_steps(sweep):
    run_dir = sweep / "loss=dsm_s,sigma=0.01"
    table = dsmexp.load_metrics(run_dir)
    header, values = raw_csv(run_dir / "metrics.csv")
    assert list(table.columns) == header == list(metrics_file.COLUMNS)
    assert table["step"].dtype == np.int64 and table["step"].tolist() == list(range(6))
    assert (table.drop(columns="step").dtypes == np.float64).all()
    np.testing.assert_array_equal(table.to_numpy(dtype=float), values)  # NaN rows included
    assert table["esm"].isna().tolist() == [False, True, False, True, False, False]  # eval_every=2, last
    legacy = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert list(legacy) == header and legacy["step"].dtype.kind == "i"
    np.testing.assert_array_equal(legacy["fit_dsm"], values[:, header.index("fit_dsm")])


def test_load_runs_is_runs_csv_with_the_flattened_config(sweep):
    runs = dsmexp.load_runs(sweep)
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "runs.csv"), runs, check_dtype=False)
    runs = runs.set_index("run_dir")
    assert runs.loc["loss=dsm_s,sigma=0", "status"] == "skipped"
    ism = runs.loc["loss=ism,sigma=0"]
    assert (ism["status"], ism["loss"], ism["sigma"], ism["dataset"], ism["steps_done"]) == (
        "completed", "ism", 0.0, "half_moon", 6)
    assert (ism["model"], ism["model.hidden"], ism["model.activation"]) == ("mlp", "[16, 32]", "tanh")
    assert (ism["optimizer"], ism["optimizer.lr"], ism["dataset.n_samples"]) == ("adamw", 1e-3, 64)
    final = dsmexp.load_metrics(sweep / "loss=ism,sigma=0").iloc[-1]
    assert ism["final_esm_data"] == final["esm_data"] and ism["final_loss"] == final["loss"]
    assert "device" not in runs.columns and "loss.name" not in runs.columns
    assert runs["steps_done"].dtype == "Int64"  # 6, not 6.0, beside the skipped row's blank
    assert "6," in (sweep / "runs.csv").read_text()


def test_load_sweep_metrics_is_long_form_by_config(sweep):
    steps = dsmexp.load_sweep_metrics(sweep)
    assert len(steps) == 12 and steps.groupby(["loss", "sigma"]).size().to_dict() == {
        ("dsm_s", 0.01): 6, ("ism", 0.0): 6}
    for subdir in JOBS:
        mine = steps[steps["run_dir"] == subdir].reset_index(drop=True)
        metrics = dsmexp.load_metrics(sweep / subdir)
        np.testing.assert_array_equal(mine["loss_value"], metrics["loss"])
        np.testing.assert_array_equal(mine["step"], metrics["step"])
        assert set(mine["status"]) == {"completed"} and set(mine["optimizer.lr"]) == {1e-3}


def test_readme_notebook_example_runs(sweep):
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Analyse in a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = re.sub(r'sweep = ".*?"', f"sweep = {str(sweep)!r}", code)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    final = scope["final"]
    assert list(final.columns) == ["dsm_s", "ism"] and list(final.index) == [0.0, 0.01]
    runs = dsmexp.load_runs(sweep).set_index("run_dir")
    assert final.loc[0.0, "ism"] == runs.loc["loss=ism,sigma=0", "final_esm_data"]
    assert scope["curves"].shape == (6, 2) and len(scope["one"]) == 6


def test_a_row_cut_short_by_a_stop_is_left_out(tmp_path, sweep):
    text = (sweep / "loss=ism,sigma=0" / "metrics.csv").read_text()
    cut = tmp_path / "metrics.csv"
    cut.write_text(text + "6,0.12")  # the process stopped in the middle of appending step 6
    pd.testing.assert_frame_equal(dsmexp.load_metrics(cut), dsmexp.load_metrics(sweep / "loss=ism,sigma=0"))


@pytest.mark.parametrize("name, content", [("summary.json", '{"status": "comp'),
                                           ("summary.json", '{"status": "completed", "steps_done": "many", '
                                                            '"config": {}}'),
                                           ("metrics.csv", "epoch,train_loss\n1,0.5\n")])
def test_load_sweep_metrics_leaves_a_run_with_a_bad_file_out_with_a_warning(tmp_path, sweep, caplog, name,
                                                                            content):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    bad = copy / "loss=ism,sigma=0" / name
    bad.write_text(content)
    steps = dsmexp.load_sweep_metrics(copy)
    assert set(steps["run_dir"]) == {"loss=dsm_s,sigma=0.01"} and len(steps) == 6
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith(f"left out of the long table: {bad}: ")

def test_config_columns_flatten_in_the_configs_order_and_keep_each_values_type():
    """The flat view runs.csv, MLflow params and TensorBoard's HParams share: a group's option is the
    group's column, lists are their text, an int stays an int beside floats (json_normalize's records)."""
    from dsmexp.records.identity import config_columns

    config = {"loss": {"name": "ism"}, "sigma": 0.01, "steps": 30,
              "model": {"name": "mlp", "hidden": [16, 32], "kwargs": {}}, "overwrite": False, "seed": None}
    flat = config_columns(config)
    assert list(flat) == ["loss", "sigma", "steps", "model", "model.hidden", "overwrite", "seed"]
    assert flat == {"loss": "ism", "sigma": 0.01, "steps": 30, "model": "mlp", "model.hidden": "[16, 32]",
                    "overwrite": False, "seed": None}
    assert type(flat["steps"]) is int and type(flat["overwrite"]) is bool
    assert config_columns({"a": 1, "b": 2.0}) == {"a": 1, "b": 2.0} and config_columns({}) == {}
