"""validate: every check of a composed config that only reads its values (no machine, no disk), raising
ConfigError with one line naming the first bad key and what is allowed. What the machine must also
allow (CUDA, the logger's package, the kernel build, the custom model, the memory) is checked once, by the
preflight (dsmexp/train/preflight.py)."""

from __future__ import annotations

import difflib
import math
from typing import Any, NoReturn

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from dsmexp.config.dataset import DATASET_SCHEMAS
from dsmexp.config.loss import check_loss
from dsmexp.config.model import check_model
from dsmexp.config.noise import check_noise
from dsmexp.config.optimizer import check_optimizer
from dsmexp.config.root import check_root
from dsmexp.config.schedule import check_schedule
from dsmexp.config.store import GROUP_SCHEMAS, group_schema, options_of
from dsmexp.errors import ConfigError


def fail(message: str, sweep_skippable: bool = False) -> NoReturn:
    raise ConfigError(message, sweep_skippable)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad setting, naming the key and what is allowed."""
    _check_present(cfg)
    _check_keys(cfg)
    _check_finite(cfg)
    check_root(cfg, fail)
    check_optimizer(cfg.optimizer, fail)
    name = cfg.dataset.name
    if name not in DATASET_SCHEMAS:
        fail(f"dataset={name}: must be one of {', '.join(DATASET_SCHEMAS)}")
    DATASET_SCHEMAS[name].check(cfg.dataset, fail)
    check_model(cfg.model, fail)
    check_schedule(cfg, fail)
    check_noise(cfg, fail)
    check_loss(cfg, fail)


def _check_present(cfg: DictConfig) -> None:
    """Every setting has a value: `~seed` or `~optimizer` (removing a key or a group) is one line."""
    top = OmegaConf.structured(ConfigStore.instance().repo["dsmexp_schema.yaml"].node)
    for key in top:
        if key in GROUP_SCHEMAS and (key not in cfg or OmegaConf.is_missing(cfg, key)):
            fail(f"{'~' if key not in cfg else ''}{key}: the {key} group needs an option; choose one with "
                 f"{key}=NAME ({', '.join(options_of(str(key)))})")
        if key not in cfg:
            fail(f"~{key}: {key} cannot be removed; every dsmexp setting needs a value (its default: "
                 f"{key}={top[key]})")
        if OmegaConf.is_missing(cfg, key):
            fail(f"{key}: missing; every dsmexp setting needs a value")


def _check_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not know (`+sigam=0.1`), with the closest known key."""
    top = ConfigStore.instance().repo["dsmexp_schema.yaml"].node  # as registered: a plugin may extend it
    _check_known(cfg, OmegaConf.structured(top), "", skip=("hydra",))
    for group in GROUP_SCHEMAS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        schema = group_schema(group, node.get("name"))
        if schema is not None:
            _check_known(node, OmegaConf.structured(schema), f"{group}.")


def _check_known(node: DictConfig, schema: DictConfig, prefix: str, skip: tuple[str, ...] = ()) -> None:
    known = [str(k) for k in schema]
    for key in node:
        if key in skip or key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        fail(f"{prefix}{key}: not a dsmexp setting{hint} (`python -m dsmexp --cfg job` lists them all)")


def _check_finite(node: Any, path: str = "") -> None:
    """Every number in the config must be finite (nan and inf are config errors, not results)."""
    if isinstance(node, DictConfig):
        for key in node:
            if key != "hydra" and not OmegaConf.is_missing(node, key):  # a missing value is reported later
                _check_finite(node[key], f"{path}{key}.")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _check_finite(item, f"{path[:-1]}[{i}].")
    elif isinstance(node, float) and not math.isfinite(node):
        fail(f"{path[:-1]}={node}: must be a finite number")
