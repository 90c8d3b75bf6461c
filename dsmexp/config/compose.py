"""Composing a config in-process, as the command line would (the one place that calls Hydra's compose),
and a built-in dataset from its YAML defaults (dsmexp.load_dataset)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from dsmexp.config.dataset import DATASET_SCHEMAS
from dsmexp.config.store import CONF_DIR, register_configs

if TYPE_CHECKING:
    from dsmexp.core.datasets import Dataset


def compose(overrides: Sequence[str] = (), hydra_config: bool = False,
            config_name: str = "config") -> DictConfig:
    """The config `python -m dsmexp OVERRIDES` would run, composed in this process (nothing is written).
    hydra_config=True keeps the hydra node (run and sweep directories, launcher)."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="dsmexp"):
        return hydra_compose(config_name=config_name, overrides=list(overrides),
                             return_hydra_config=hydra_config)


def compose_sample(run: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The sample command's config (conf/sample.yaml) for one run directory, checked (values only). The run
    is set after composing: a sweep's run directory names (loss=dsm,seed=0) are not override syntax."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dsmexp.config.checks import fail
    from dsmexp.config.sampler import check_sample, sampler_names
    from dsmexp.errors import ConfigError

    try:
        cfg = compose(list(overrides), config_name="sample")
    except (HydraException, OmegaConfBaseException) as err:
        missing = re.search(r"Could not find '(\w+)/([^']*)'", str(err))
        if missing and missing.group(1) == "sampler":
            names = ", ".join(sampler_names())
            raise ConfigError(f"sampler={missing.group(2)}: must be one of {names}") from None
        raise ConfigError(" ".join(line.strip() for line in str(err).splitlines() if line.strip())) from None
    cfg.run = str(run)
    check_sample(cfg, fail)
    return cfg


def load_dataset(name: str, seed: int = 0, **params: object) -> Dataset:
    """A built-in dataset with the defaults of conf/dataset/<name>.yaml, e.g. load_dataset("half_moon");
    `seed` draws its random geometry (plane, means, rotation) as a run with that data seed would."""
    if name not in DATASET_SCHEMAS:
        raise ValueError(f"dataset={name}: must be one of {', '.join(DATASET_SCHEMAS)}")
    defaults = OmegaConf.load(f"{CONF_DIR}/dataset/{name}.yaml")
    defaults.pop("defaults", None)
    # the core modules (torch) load when a dataset is built: --help and completion stay fast
    from dsmexp.core.datasets import build_dataset

    cfg = OmegaConf.merge(OmegaConf.structured(DATASET_SCHEMAS[name]), defaults, params)
    return build_dataset(cfg, seed)
