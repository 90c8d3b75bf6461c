"""A run's identity: the settings that change its numbers, and the check that a run directory holds
this run (and only files dsmexp wrote) before anything in it is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from dsmexp.config.noise import NoiseConfig
from dsmexp.config.root import Config
from dsmexp.config.schedule import ScheduleConfig
from dsmexp.config.store import GROUP_SCHEMAS, group_schema
from dsmexp.errors import ConfigError
from dsmexp.records import artifacts
from dsmexp.safe_io import unreadable

# Keys that do not change the logged numbers (how fast a run goes, or only the end-of-run score field);
# runs that differ only here are the same run. threads and chunk_size change the last float32 digits
# (summing in another order), so summary.json records them and a resume that changes them warns.
NON_RESULT_KEYS = ("device", "threads", "overwrite", "chunk_size", "compile", "kernel", "checkpoint_every",
                   "grid_size", "logger")
GROUPS = tuple(GROUP_SCHEMAS)  # the config groups: in a flat table, a group's option is its own column


def result_config(cfg: DictConfig) -> dict:
    """The resolved config minus the keys that do not change the numbers (NON_RESULT_KEYS)."""
    keys = [k for k in cfg if k not in NON_RESULT_KEYS and k != "hydra"]
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in keys}


def check_existing_run(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Check what run_dir already holds before anything in it is touched; only reads.

    Raises RunFileError for a file under a dsmexp name that dsmexp did not write or cannot read, and
    ConfigError for a run with other settings (unless overwrite=true). Returns the summary of a
    finished run with these settings (to be skipped), else None. Called before Hydra writes anything
    for a job (command line, sweeper) and again by run() once it owns the directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    artifacts.check_run_files(run_dir, overwrite=cfg.overwrite)
    if cfg.overwrite:
        return None
    summary = artifacts.read_summary(run_dir)
    stored = summary.get("config") if summary else None
    what = "summary.json"
    if stored is None:
        state = artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT_FILE)
        stored, what = (state["config"] if state else None), "checkpoint.pt"
    if stored is None:
        return None
    stored = _with_schema_defaults({k: v for k, v in stored.items() if k not in NON_RESULT_KEYS})
    current = result_config(cfg)
    defaults = _schema_defaults()
    # a key the stored run predates counts as its default value (runs stay valid as the schema grows)
    differing = sorted(k for k in set(stored) | set(current)
                       if stored.get(k, defaults.get(k)) != current.get(k))
    if differing:
        raise ConfigError(
            f"{run_dir} holds a run with other settings ({', '.join(differing)} differ, per its {what}); "
            "pass overwrite=true to replace it, or choose another hydra.run.dir / hydra.sweep.dir")
    return summary if summary is not None and summary["status"] in artifacts.FINISHED else None


def _with_schema_defaults(stored: dict) -> dict:
    """A stored config whose groups or nodes predate a key get that key's schema default (the dataset's,
    the model's and the loss's options; the schedule and noise nodes), so runs stay valid as the schemas
    grow."""
    out = dict(stored)
    for group in ("dataset", "model", "loss", "optimizer"):
        node = out.get(group)
        schema = group_schema(group, node.get("name")) if isinstance(node, dict) else None
        if schema is not None:
            out[group] = OmegaConf.to_container(OmegaConf.structured(schema)) | node
    out["schedule"] = OmegaConf.to_container(OmegaConf.structured(ScheduleConfig)) | out.get("schedule", {})
    out["noise"] = OmegaConf.to_container(OmegaConf.structured(NoiseConfig)) | out.get("noise", {})
    return out


def _schema_defaults() -> dict:
    """Top-level schema defaults (plain values only), for runs stored before a key existed."""
    schema = OmegaConf.structured(Config)
    return {k: schema[k] for k in schema if not OmegaConf.is_missing(schema, k)
            and not OmegaConf.is_config(schema[k])}


def run_config(run_dir: Path) -> dict:
    """The settings a run's numbers belong to: summary.json's copy, else what Hydra recorded at launch
    (minus the keys that change speed but not numbers, as in summary.json); RunFileError naming the file
    when neither can be read."""
    summary = artifacts.read_summary(run_dir)
    if summary and summary.get("config"):
        return summary["config"]
    path = Path(run_dir) / ".hydra" / "config.yaml"
    try:
        config = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # noqa: BLE001 - yaml and OmegaConf raise several types
        raise unreadable(path, type(err).__name__) from None
    if not isinstance(config, dict):
        raise unreadable(path, "not a mapping of settings")
    return {k: v for k, v in config.items() if k not in NON_RESULT_KEYS}


def config_columns(config: dict) -> dict:
    """A nested run config as flat columns (pandas.json_normalize): {"optimizer": {"name": "adam", "lr":
    0.1}} gives {"optimizer": "adam", "optimizer.lr": 0.1}, the option of a config group being the column
    named for the group; lists become their JSON text; an empty mapping gives no column."""
    flat = pd.json_normalize(config, sep=".").to_dict("records")[0] if config else {}
    position = {key: i for i, key in enumerate(config)}  # json_normalize lists nested keys last
    ordered = sorted(flat, key=lambda key: position[key.partition(".")[0]])
    return {_group_column(key): json.dumps(flat[key]) if isinstance(flat[key], (list, tuple)) else flat[key]
            for key in ordered}


def _group_column(key: str) -> str:
    group, _, sub = key.partition(".")
    return group if group in GROUPS and sub == "name" else key
