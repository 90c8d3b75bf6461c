"""A run's identity: the settings that change its numbers, and the check that a run directory holds
this run (and only files dsmexp wrote) before anything in it is touched."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dsmexp import artifacts
from dsmexp.config import ConfigError

# Keys that do not change the logged numbers (how fast a run goes, or only the end-of-run score field);
# runs that differ only here are the same run. threads and chunk_size change the last float32 digits
# (summing in another order), so summary.json records them and a resume that changes them warns.
NON_RESULT_KEYS = ("device", "threads", "overwrite", "chunk_size", "compile", "kernel", "checkpoint_every",
                   "grid_size", "logger")


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
    stored = _with_dataset_defaults({k: v for k, v in stored.items() if k not in NON_RESULT_KEYS})
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


def _with_dataset_defaults(stored: dict) -> dict:
    """A stored config whose dataset group predates a dataset key gets that key's schema default."""
    from dsmexp.config import DATASET_SCHEMAS

    dataset = stored.get("dataset")
    if not isinstance(dataset, dict) or dataset.get("name") not in DATASET_SCHEMAS:
        return stored
    defaults = OmegaConf.to_container(OmegaConf.structured(DATASET_SCHEMAS[dataset["name"]]))
    return stored | {"dataset": defaults | dataset}


def _schema_defaults() -> dict:
    """Top-level schema defaults (plain values only), for runs stored before a key existed."""
    from dsmexp.config import Config

    schema = OmegaConf.structured(Config)
    return {k: schema[k] for k in schema if not OmegaConf.is_missing(schema, k)
            and not OmegaConf.is_config(schema[k])}
