"""The logger=NAME config group (conf/logger/): live tracking's backend and its options, with their pure
checks. Whether the backend's package is installed and its store can be used is the preflight's check
(dsmexp/train/tracking.py check_logger)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoggerConfig:
    name: str = "none"


@dataclass
class TensorBoardConfig(LoggerConfig):
    name: str = "tensorboard"
    log_dir: str | None = None


@dataclass
class MlflowConfig(LoggerConfig):
    name: str = "mlflow"
    tracking_uri: str | None = None
    experiment: str | None = None


LOGGER_SCHEMAS: dict[str, type[LoggerConfig]] = {"none": LoggerConfig, "tensorboard": TensorBoardConfig,
                                                 "mlflow": MlflowConfig}
