"""logger=mlflow with quotes and backslashes in the run directory's path: the run is tracked, and a
resumed job finds and continues its MLflow run (no filter string holds the path itself)."""

import logging

import pytest
from mlflow import MlflowClient

from dsmexp.records import metrics_file
from dsmexp.train import tracking, trainer
from tests.conftest import TINY, make_cfg


@pytest.fixture
def store(tmp_path, monkeypatch) -> MlflowClient:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in to read a file store
    return MlflowClient(tracking_uri=(tmp_path / "outputs" / "mlruns").as_uri())


def test_a_run_directory_with_an_apostrophe_is_tracked(tmp_path, store, caplog):
    run_dir = tmp_path / "outputs" / "sweeps" / "it's" / "note=it's"
    cfg = make_cfg(*TINY, "eval_samples=100", "loss=ism", "sigma=0", "logger=mlflow", "kernel=torch")
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.tracking"):
        assert trainer.run(cfg, run_dir) == "completed"
    assert [r.getMessage() for r in caplog.records if r.name == "dsmexp.train.tracking"] == []
    experiment = store.get_experiment_by_name("outputs/sweeps/it%27s")
    [run] = store.search_runs([experiment.experiment_id])
    assert run.info.run_name == "note=it's" and run.info.status == "FINISHED"
    assert run.data.tags[tracking.RUN_DIR_TAG] == str(run_dir.resolve())
    steps = sorted(m.step for m in store.get_metric_history(run.info.run_id, "loss"))
    assert steps == metrics_file.read_metrics(run_dir / metrics_file.METRICS_FILE)["step"].tolist()
    assert steps == list(range(6))


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "both ' and \"", "back\\slash", "end'\\"])
def test_a_resumed_job_continues_its_mlflow_run_whatever_its_path(name, tmp_path, store):
    run_dir = tmp_path / "outputs" / "sweeps" / name / name
    first = tracking.MlflowBackend(run_dir, {"sigma": 0.1}, metrics_file.COLUMNS, 0)  # stopped: still RUNNING
    again = tracking.MlflowBackend(run_dir, {"sigma": 0.1}, metrics_file.COLUMNS, 3)
    assert again.run_id == first.run_id
    other = tracking.MlflowBackend(run_dir.parent / f"{name}2", {"sigma": 0.1}, metrics_file.COLUMNS, 0)
    assert other.run_id != first.run_id
    again.finish("completed", run_dir)
    finished_then_rerun = tracking.MlflowBackend(run_dir, {"sigma": 0.1}, metrics_file.COLUMNS, 0)
    assert finished_then_rerun.run_id != first.run_id  # a finished run is not reopened


def test_runs_made_before_the_hash_tag_are_still_continued(tmp_path, store):
    run_dir = tmp_path / "outputs" / "sweeps" / "s" / "sigma=0.1"
    experiment = store.create_experiment("outputs/sweeps/s")
    old = store.create_run(experiment, run_name=run_dir.name,
                           tags={tracking.RUN_DIR_TAG: str(run_dir.resolve())})  # as older dsmexp made it
    assert tracking.MlflowBackend(run_dir, {}, metrics_file.COLUMNS, 5).run_id == old.info.run_id
