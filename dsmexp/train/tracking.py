"""Live tracking (the logger config group, conf/logger/: none, tensorboard, mlflow, each with its options):
the rows of metrics.csv, in the batches the training loop writes them, also go to TensorBoard or MLflow,
and the end of a run is reported there too. Where they go is said in the run's log when it starts.

- tensorboard: event files in the run directory itself (or logger.log_dir/<run directory's name>), so
  every job is one TensorBoard run and `tensorboard --logdir <sweep dir>` compares a sweep. Each metric
  is an add_scalar; its first value carries the column's description (metrics_file.DESCRIPTIONS), which
  TensorBoard shows beside the chart. A resumed run purges the steps after its checkpoint, as metrics.csv
  does. The sweep's figures are added by
  `dsmexp.report` (figures_to_tensorboard).
- mlflow: one MLflow run per job (named by its directory, the flattened config as params, every metric
  per step, summary.json and score_field.npz as artifacts) in one experiment per sweep directory
  (experiment_name: its path, with ' and \\ written %27 and %5C), or logger.experiment. The store is
  logger.tracking_uri, else MLFLOW_TRACKING_URI when set, else a local file store, outputs/mlruns.

Both need the optional extra (`pip install ".[tracking]"` in a checkout). The preflight (preflight.py)
rejects a missing package, a server that does not answer MLflow's own search_experiments, or a database
store without its packages before any work (check_logger). A new backend is one BACKENDS entry (a class
with log_rows and finish), its PACKAGES entry, its schema (dsmexp/config/logger.py) and
conf/logger/NAME.yaml. Once training runs, a tracker that fails (disk full, server gone) is reported once
and dropped: the run goes on, and metrics.csv, the record, is never affected.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dsmexp.records import artifacts
from dsmexp.records.identity import config_columns
from dsmexp.records.metrics_file import DESCRIPTIONS
from dsmexp.safe_io import exclusive, shown_path

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": ("tensorboard", "tensorboard==2.21.0"), "mlflow": ("mlflow", "mlflow==3.17.2")}
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # stores MLflow keeps with SQLAlchemy
MLFLOW_STORE = Path("outputs") / "mlruns"  # relative to the working directory, like outputs/runs
RUN_DIR_TAG = "dsmexp.run_dir"
RUN_DIR_ID_TAG = "dsmexp.run_dir_sha256"  # the run directory's path hashed: safe in a filter string


def _path_id(path_text: str) -> str:
    return hashlib.sha256(path_text.encode("utf-8", "surrogateescape")).hexdigest()


def experiment_name(sweep_dir: Path) -> str:
    """The MLflow experiment of a sweep directory: its path as the user named it, with ' and \\ written
    %27 and %5C (MLflow's file store looks experiments up by a quoted name, and cannot quote those;
    runs are found by their own path, so two directories sharing an experiment never mix)."""
    return shown_path(sweep_dir).replace("'", "%27").replace("\\", "%5C")


def _quotable(text: str) -> bool:
    """True when '{text}' is a string in an MLflow filter (MLflow has no escape for a quote in it)."""
    return not any(ch in text for ch in "'\\")


def check_logger(options: Any) -> str | None:
    """Why the `logger` group's backend cannot work here, as one line naming the key, or None when it can."""
    logger = options.name
    if logger not in LOGGERS:
        return f"logger={logger}: must be one of {', '.join(LOGGERS)}"
    if logger == "none":
        return None
    module, package = PACKAGES[logger]
    if importlib.util.find_spec(module) is None:
        return (f"logger={logger}: the {module} package is not installed; pip install \"{package}\" (in a "
                "dsmexp checkout: pip install \".[tracking]\", which make run does)")
    if logger == "mlflow":
        problem = _unreachable(mlflow_uri(options))
        return f"{_store_key(options)}={mlflow_uri(options)}: {problem}" if problem else None
    return None


def mlflow_uri(options: Any) -> str:
    """The MLflow store: logger.tracking_uri, else $MLFLOW_TRACKING_URI, else the file store outputs/mlruns"""
    given = options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    return given or MLFLOW_STORE.resolve().as_uri()


def _store_key(options: Any) -> str:
    """Where the store was named, for a one-line error."""
    return "logger.tracking_uri" if options.get("tracking_uri") else "MLFLOW_TRACKING_URI"


@functools.cache
def _unreachable(uri: str) -> str | None:
    """A line saying why the store at `uri` cannot be used (a database store without its packages, an
    http(s) server that does not answer as MLflow), checked once per process."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme in DATABASE_SCHEMES:
        if importlib.util.find_spec("sqlalchemy") is None or importlib.util.find_spec("alembic") is None:
            return (f"a database store needs the full mlflow package (SQLAlchemy and alembic); "
                    f"pip install \"{PACKAGES['mlflow'][1]}\"")
        return None
    if parsed.scheme not in ("http", "https"):
        return None  # local stores (file, sqlite, a path) are created on first use
    return _server_problem(uri, parsed)


def _server_problem(uri: str, parsed) -> str | None:
    """Ask the server what a run will ask it (MlflowClient.search_experiments), once and without retries;
    a line saying why it cannot serve, or None."""
    from mlflow import MlflowClient

    where = f"{parsed.hostname}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"
    with _environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"):
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - MlflowException and the requests errors under it
            text = str(err)
            for cause, said in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                                ("Name or service not known", "unknown host"),
                                ("Failed to resolve", "unknown host")):
                if cause in text:
                    return f"cannot reach {where} ({said}); start the server, or name another store"
            line = text.splitlines()[0][:200] if text else type(err).__name__
            return f"the server at {where} does not answer as an MLflow tracking server ({line})"
    return None


@contextlib.contextmanager
def _environment(**values: str):
    """Environment variables set for a `with` block (MLflow reads its HTTP settings from there)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def finite(columns: Sequence[str], row: Sequence[float]) -> dict[str, float]:
    """A metrics.csv row as {metric: value}, without step and without the NaN of metrics that were not
    computed at that step (and the non-finite values of a diverging step: metrics.csv keeps them)."""
    return {name: float(v) for name, v in zip(columns[1:], row[1:]) if math.isfinite(v)}


HPARAM_METRICS = ("loss", "esm", "esm_data", "esm_data_rel")  # what the HParams tab lists beside the settings


class TensorBoardBackend:
    def __init__(self, run_dir: Path, config: dict, columns: Sequence[str], first_step: int,
                 options: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(options.log_dir) / Path(run_dir).name if options.get("log_dir") else Path(run_dir)
        log.info("logging to TensorBoard in %s (tensorboard --logdir %s)", shown_path(log_dir),
                 shown_path(log_dir.parent))

        # purge_step hides events a previous attempt logged at or after the step training resumes from;
        # a long queue keeps a step from waiting on the writer thread (it checksums in Python)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=first_step, max_queue=1000,
                                    flush_secs=10)
        self.columns = columns
        self._described: set[str] = set()
        self._log_hparams(config)

    def _log_hparams(self, config: dict) -> None:
        """The run's settings (the flattened config, as in runs.csv) in TensorBoard's HParams tab, against
        the metrics a reader compares runs by."""
        from torch.utils.tensorboard.summary import hparams

        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                  for k, v in config_columns(config).items()}
        for summary in hparams(values, dict.fromkeys(HPARAM_METRICS, 0.0)):
            self.writer.file_writer.add_summary(summary)

    def log_rows(self, rows: Sequence[Sequence[float]]) -> None:
        for row in rows:
            step = int(row[0])
            for tag, value in finite(self.columns, row).items():
                if tag in self._described:
                    self.writer.add_scalar(tag, value, step)
                else:
                    self._describe(tag, value, step)

    def _describe(self, tag: str, value: float, step: int) -> None:
        """A metric's first value, with its description (TensorBoard keeps a tag's first metadata)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.scalar.metadata import create_summary_metadata

        meta = create_summary_metadata(display_name=tag, description=DESCRIPTIONS.get(tag, ""))
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value, metadata=meta)])
        self.writer.file_writer.add_summary(summary, step)
        self._described.add(tag)

    def finish(self, status: str, run_dir: Path) -> None:
        self.writer.close()


@contextlib.contextmanager
def _store_lock(store: Path | None):
    """An exclusive OS lock on a local MLflow file store (a file store does not keep names unique when
    two processes create one experiment at once); a server keeps them unique itself."""
    if store is None:
        yield
        return
    store.mkdir(parents=True, exist_ok=True)
    with exclusive(store / ".dsmexp-create.lock", f"is creating an MLflow experiment in {store}"):
        yield


class MlflowBackend:
    def __init__(self, run_dir: Path, config: dict, columns: Sequence[str], first_step: int,
                 options: Any = None) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param, RunStatus


        # a server that goes away mid-run costs a few seconds, not MLflow's minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        options = options if options is not None else {}
        uri = mlflow_uri(options)
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in
        self.client, self.columns = MlflowClient(tracking_uri=uri), columns
        store = Path(urlparse(uri).path) if uri.startswith("file:") else None
        name = options.get("experiment") or experiment_name(run_dir.parent)
        with _store_lock(store):  # jobs of a sweep starting together must not create the experiment twice
            experiment = self._experiment(name)
        log.info("logging to MLflow: store %s, experiment %r", uri, name)
        run_dir_text = str(Path(run_dir).resolve())
        earlier = self._earlier_run(experiment, run_dir_text)
        if earlier is not None and earlier.info.status != RunStatus.to_string(RunStatus.FINISHED):
            self.run_id = earlier.info.run_id  # a resumed job continues its MLflow run
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment, run_name=run_dir.name, tags={
                RUN_DIR_TAG: run_dir_text, RUN_DIR_ID_TAG: _path_id(run_dir_text)})
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in config_columns(config).items()]
            self.client.log_batch(self.run_id, params=params)

    def _earlier_run(self, experiment: str, run_dir_text: str):
        """The latest MLflow run of this run directory, or None. Found by the hash of its path (a filter
        string cannot quote every path: MLflow has no escape for a quote in it); runs that predate that
        tag, by the path itself where it holds no quote or backslash."""
        filters = [f"tags.`{RUN_DIR_ID_TAG}` = '{_path_id(run_dir_text)}'"]
        if _quotable(run_dir_text):
            filters.append(f"tags.`{RUN_DIR_TAG}` = '{run_dir_text}'")
        for text in filters:
            found = self.client.search_runs([experiment], text, max_results=1,
                                            order_by=["attributes.start_time DESC"])
            if found and found[0].data.tags.get(RUN_DIR_TAG) == run_dir_text:
                return found[0]
        return None

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another job of the sweep created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_rows(self, rows: Sequence[Sequence[float]]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, int(row[0]))
                   for row in rows for k, v in finite(self.columns, row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, status: str, run_dir: Path) -> None:

        for name in (artifacts.SUMMARY_FILE, artifacts.FIELD_FILE):
            if (run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_tag(self.run_id, "status", status)
        self.client.set_terminated(self.run_id, "FAILED" if status == "failed" else "FINISHED")


BACKENDS = {"tensorboard": TensorBoardBackend, "mlflow": MlflowBackend}
LOGGERS = ("none", *BACKENDS)


class Tracker:
    """What the training loop calls. Forwards to the chosen backend; the backend's first exception is
    logged once as a warning and the backend dropped, so training and metrics.csv go on unaffected."""

    def __init__(self, logger: str = "none", backend: Any = None) -> None:
        self.logger, self.backend = logger, backend

    @classmethod
    def start(cls, options: Any, run_dir: Path, config: dict, columns: Sequence[str],
              first_step: int) -> Tracker:
        """The `logger` group's backend (options: its config node) for run_dir, from first_step on."""
        tracker = cls(options.name)
        if options.name != "none":
            tracker._call(lambda: setattr(tracker, "backend", BACKENDS[options.name](
                Path(run_dir), config, columns, first_step, options)), when="starting")
        return tracker

    def log_rows(self, rows: Sequence[Sequence[float]]) -> None:
        if self.backend is not None:
            self._call(lambda: self.backend.log_rows(rows), when=f"at step {int(rows[0][0])}")

    def finish(self, status: str, run_dir: Path) -> None:
        if self.backend is not None:
            self._call(lambda: self.backend.finish(status, Path(run_dir)), when="at the end of the run")
            self.backend = None

    def _call(self, action, when: str) -> None:
        try:
            action()
        except Exception as err:
            self.backend = None
            line = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            log.warning("logger=%s failed %s (%s); training goes on without it, metrics.csv has every "
                        "step", self.logger, when, line)


def figures_to_tensorboard(sweep_dir: Path, pngs: Sequence[Path]) -> Path | None:
    """Add a sweep's figure images to TensorBoard as the run `figures` beside its jobs, when any job of
    the sweep logged there (logger=tensorboard); returns that run's directory, else None."""
    sweep_dir = Path(sweep_dir)
    if importlib.util.find_spec("tensorboard") is None or not any(
            p.parent != sweep_dir / "figures" for p in sweep_dir.rglob("events.out.tfevents.*")):
        return None
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    target = sweep_dir / "figures"
    with SummaryWriter(log_dir=str(target), purge_step=0) as writer:  # a redraw replaces the images
        for png in sorted(p for p in pngs if Path(p).suffix == ".png"):
            writer.add_image(Path(png).stem, plt.imread(png)[..., :3], 0, dataformats="HWC")
    return target
