"""Live tracking: what TensorBoard and MLflow hold after a run, read back with their own readers and
compared with metrics.csv; bad loggers refused before work; a tracker failing mid-run is dropped once."""

import logging
import socket
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import dsmexp  # noqa: E402
from dsmexp.errors import ConfigError  # noqa: E402
from dsmexp.records import artifacts, identity, metrics_file
from dsmexp.records.identity import config_columns  # noqa: E402
from dsmexp.records.metrics_file import COLUMNS, DESCRIPTIONS  # noqa: E402
from dsmexp.train import (
    tracking,
    trainer,  # noqa: E402
)
from dsmexp.train.preflight import preflight
from tests.conftest import TINY, make_cfg, run_cli  # noqa: E402

FAST = [*TINY, "eval_samples=200", "eval_every=2"]


def train(run_dir: Path, *overrides: str) -> str:
    return trainer.run(make_cfg(*FAST, *overrides), run_dir)


def logged_values(run_dir: Path) -> dict[str, tuple[list[int], np.ndarray]]:
    """metrics.csv as {metric: (steps where it is finite, values)}: what a tracker should hold."""
    table = dsmexp.load_metrics(run_dir)
    out = {}
    for name in metrics_file.COLUMNS[1:]:
        finite = table[np.isfinite(table[name])]
        if len(finite):
            out[name] = (finite["step"].tolist(), finite[name].to_numpy())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_missing_package_is_one_line(monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(ConfigError) as err:
        preflight(make_cfg("logger=mlflow"))
    assert str(err.value) == ('logger=mlflow: the mlflow package is not installed; pip install '
                              '"mlflow==3.17.2" (in a dsmexp checkout: pip install ".[tracking]", which make '
                              'run does)')
    preflight(make_cfg("logger=tensorboard"))
    preflight(make_cfg())  # logger=none needs neither package


def test_unreachable_tracking_server_is_refused_before_training(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ConfigError, match=rf"^MLFLOW_TRACKING_URI={uri}: cannot reach 127\.0\.0\.1:\d+ "):
        preflight(make_cfg("logger=mlflow"))
    with pytest.raises(ConfigError, match=rf"^logger.tracking_uri={uri}: cannot reach 127\.0\.0\.1:\d+ "):
        preflight(make_cfg("logger=mlflow", f"logger.tracking_uri={uri}"))  # the option wins over the env
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///somewhere/mlruns")
    preflight(make_cfg("logger=mlflow"))  # local stores need no server


def test_a_server_that_is_not_mlflow_is_refused_before_training(monkeypatch):
    """The probe asks what a run will ask (search_experiments): a web server that answers, but not as
    MLflow (here Python's http.server, 501 to a POST), is refused in one line, not found out mid-run."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        tracking._unreachable.cache_clear()
        with pytest.raises(ConfigError, match=rf"^logger.tracking_uri={uri}: the server at 127\.0\.0\.1:\d+ "
                           "does not answer as an MLflow tracking server"):
            preflight(make_cfg("logger=mlflow", f"logger.tracking_uri={uri}"))
    finally:
        server.shutdown()
        tracking._unreachable.cache_clear()


def test_tensorboard_holds_every_logged_metric_of_metrics_csv(tmp_path):
    run_dir = tmp_path / "loss=dsm_s,sigma=0.01"
    assert train(run_dir, "loss=dsm_s", "logger=tensorboard") == "completed"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    want = logged_values(run_dir)
    assert set(events.Tags()["scalars"]) == set(want) and "esm" in want and "time_s" in want
    for name, (steps, values) in want.items():
        got = events.Scalars(name)
        assert [e.step for e in got] == steps, name
        np.testing.assert_allclose([e.value for e in got], values, rtol=1e-6, err_msg=name)  # float32
        assert events.SummaryMetadata(name).summary_description == DESCRIPTIONS[name]  # beside the chart
    # the HParams tab: the run's settings (as runs.csv flattens them) against the metrics runs are compared by
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = [plugin_data_pb2.HParamsPluginData.FromString(c)
            for c in events.PluginTagToContent("hparams").values()]
    session = next(d.session_start_info for d in data if d.HasField("session_start_info"))
    assert session.hparams["loss"].string_value == "dsm_s" and session.hparams["sigma"].number_value == 0.01


def test_an_sqlite_store_takes_the_run(tmp_path, monkeypatch):
    """MLflow's recommended local store works with what the tracking extra installs."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = tmp_path / "outputs" / "runs" / "r"
    assert trainer.run(make_cfg(*FAST, "logger=mlflow"), run_dir) == "completed"
    [run] = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("outputs/runs").experiment_id])
    assert run.info.status == "FINISHED" and "loss" in run.data.metrics


def test_a_database_store_without_its_packages_is_refused_in_one_line(monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name: None if name == "sqlalchemy" else real(name))
    tracking._unreachable.cache_clear()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    with pytest.raises(ConfigError, match=r"^MLFLOW_TRACKING_URI=sqlite:///x.db: a database store needs "):
        preflight(make_cfg("logger=mlflow"))
    tracking._unreachable.cache_clear()


def test_mlflow_run_holds_config_metrics_and_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in to read a file store
    run_dir = tmp_path / "outputs" / "sweeps" / "s" / "loss=ism,sigma=0"
    cfg = make_cfg(*FAST, "loss=ism", "sigma=0", "logger=mlflow")
    assert trainer.run(cfg, run_dir) == "completed"
    client = MlflowClient(tracking_uri=(tmp_path / "outputs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("outputs/sweeps/s")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "loss=ism,sigma=0" and run.info.status == "FINISHED"
    assert run.data.tags["status"] == "completed"
    params = {k: str(v) for k, v in config_columns(identity.result_config(cfg)).items()}
    assert run.data.params == params and params["loss"] == "ism" and "logger" not in params
    want = logged_values(run_dir)
    assert set(run.data.metrics) == set(want)
    for name, (steps, values) in want.items():
        history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        assert [m.step for m in history] == steps, name
        np.testing.assert_array_equal([m.value for m in history], values, err_msg=name)
    stored = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert stored == {artifacts.SUMMARY_FILE, artifacts.FIELD_FILE}
    local = client.download_artifacts(run.info.run_id, artifacts.SUMMARY_FILE, str(tmp_path))
    assert Path(local).read_text() == (run_dir / artifacts.SUMMARY_FILE).read_text()


def test_a_tracker_failing_mid_run_is_reported_once_and_training_goes_on(tmp_path, monkeypatch, caplog):
    calls = []
    original = tracking.TensorBoardBackend.log_rows

    def disk_full(self, rows):
        calls.append(int(rows[0][0]))
        if rows[0][0] >= 2:
            raise OSError(28, "No space left on device")
        original(self, rows)

    monkeypatch.setattr(tracking.TensorBoardBackend, "log_rows", disk_full)
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.tracking"):
        assert train(run_dir, "logger=tensorboard") == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.name == "dsmexp.train.tracking"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "logger=tensorboard failed at step 2 (OSError: [Errno 28] No space left on device)")
    assert calls == [0, 1, 2]  # dropped after the failure: no retry each step
    assert dsmexp.load_metrics(run_dir)["step"].tolist() == list(range(6))
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [0, 1]  # what was written before stays


def test_resumed_run_replaces_the_steps_after_its_checkpoint_in_tensorboard(tmp_path, monkeypatch):
    run_dir, crashed = tmp_path / "run", []
    original = trainer.Trainer._step

    def crash_once_at_step_5(self, step):
        if step == 5 and not crashed:
            crashed.append(step)
            raise RuntimeError("killed")
        return original(self, step)

    monkeypatch.setattr(trainer.Trainer, "_step", crash_once_at_step_5)
    cfg = make_cfg(*FAST, "checkpoint_every=2", "logger=tensorboard")
    with pytest.raises(RuntimeError, match="killed"):
        trainer.run(cfg, run_dir)  # rows 0-4 logged, checkpoint after step 3
    assert trainer.run(cfg, run_dir) == "completed"  # resumes at step 4: row 4 again, then 5
    events = EventAccumulator(str(run_dir))
    events.Reload()
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == list(range(6))
    np.testing.assert_allclose([e.value for e in loss], dsmexp.load_metrics(run_dir)["loss"], rtol=1e-6)


def test_sweep_figures_go_to_tensorboard_beside_the_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    assert tracking.figures_to_tensorboard(sweep, []) is None  # no job logged to TensorBoard
    train(sweep / "loss=dsm,sigma=0.01", "logger=tensorboard")
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1])
    png = tmp_path / "figure2.png"
    fig.savefig(png)
    plt.close(fig)
    target = tracking.figures_to_tensorboard(sweep, [png, tmp_path / "figure2.pdf"])
    assert target == sweep / "figures"
    events = EventAccumulator(str(target))
    events.Reload()
    [image] = events.Images("figure2")
    assert (image.width, image.height) == (100, 50)


@pytest.mark.slow
def test_command_line_bad_logger_and_unreachable_server_write_nothing(tmp_path):
    proc = run_cli(*TINY, "logger=wandb", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "dsmexp: error: logger=wandb: must be one of mlflow, none, tensorboard"]
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    proc = run_cli("-m", *TINY, "loss=ism,dsm_s", "logger=mlflow", cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 1 and "cannot reach 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.csv"))


@pytest.mark.slow
def test_a_sweep_is_one_mlflow_experiment_with_one_run_per_job(tmp_path, monkeypatch):
    run_cli("-m", *TINY, "loss=ism,dsm_s", "sigma=0.01", "logger=mlflow", "hydra.sweep.dir=outputs/sweeps/t",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path,
            env={"MLFLOW_TRACKING_URI": ""})
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in to read a file store
    client = MlflowClient(tracking_uri=(tmp_path / "outputs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("outputs/sweeps/t")
    runs = client.search_runs([experiment.experiment_id])
    jobs = sorted(p.parent.name for p in (tmp_path / "outputs" / "sweeps" / "t").glob("*/metrics.csv"))
    assert len(jobs) == 2 and sorted(r.info.run_name for r in runs) == jobs
    for run in runs:
        steps = dsmexp.load_metrics(tmp_path / "outputs" / "sweeps" / "t" / run.info.run_name)
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == steps["step"].tolist()


def test_the_logger_groups_options_say_where_tracking_goes(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="dsmexp.train.tracking"):
        cfg = make_cfg(*FAST, "logger=tensorboard", f"logger.log_dir={tmp_path / 'tb'}")
        trainer.run(cfg, tmp_path / "r1")
    assert list((tmp_path / "tb" / "r1").glob("events.out.tfevents.*"))
    assert not list(tmp_path.glob("r1/events*"))
    assert any(r.getMessage().startswith("logging to TensorBoard in tb/r1") for r in caplog.records)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with caplog.at_level(logging.INFO, logger="dsmexp.train.tracking"):
        trainer.run(make_cfg(*FAST, "logger=mlflow", f"logger.tracking_uri={uri}", "logger.experiment=mine"),
                    tmp_path / "r2")
    assert f"logging to MLflow: store {uri}, experiment 'mine'" in [r.getMessage() for r in caplog.records]
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_runs([client.get_experiment_by_name("mine").experiment_id])) == 1
    # the logger's options are not settings of the run: they never change its directory
    from dsmexp.config import compose
    named = compose(["logger=mlflow", f"logger.tracking_uri={uri}", "logger.experiment=mine"],
                    hydra_config=True)
    assert named.hydra.run.dir == "outputs/runs/default"


def test_every_metrics_column_has_a_description():
    assert set(DESCRIPTIONS) == set(COLUMNS) and all(DESCRIPTIONS.values())
