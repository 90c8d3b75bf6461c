"""Where the configs live (CONF_DIR), the schema registered in Hydra's ConfigStore (register_configs, called
explicitly by every entry point) and the two resolvers conf/config.yaml uses."""

from __future__ import annotations

import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dsmexp.config.dataset import DATASET_SCHEMAS
from dsmexp.config.logger import LOGGER_SCHEMAS
from dsmexp.config.loss import LossConfig
from dsmexp.config.model import MODEL_SCHEMAS
from dsmexp.config.optimizer import OptimizerConfig
from dsmexp.config.root import Config
from dsmexp.config.run_dirs import run_dirname
from dsmexp.config.sampler import SampleConfig, SamplerConfig

# absolute, so any working directory works: dsmexp/conf in an installed wheel (setup.py copies it
# there), else the repository's top-level conf/ (source checkout, editable install)
_PACKAGED_CONF = Path(__file__).resolve().parent.parent / "conf"
CONF_DIR = str(_PACKAGED_CONF if _PACKAGED_CONF.is_dir() else _PACKAGED_CONF.parent.parent / "conf")
# per config group: option name -> its schema (loss and optimizer: one schema for every option)
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": dict(DATASET_SCHEMAS), "loss": {"loss": LossConfig}, "model": dict(MODEL_SCHEMAS),
    "optimizer": {"optimizer": OptimizerConfig}, "logger": dict(LOGGER_SCHEMAS)}
# the groups of the sample command's config (conf/sample.yaml), not of a training run's
SAMPLE_GROUP_SCHEMAS: dict[str, dict[str, type]] = {"sampler": {"sampler": SamplerConfig}}
SAMPLE_GROUPS = tuple(SAMPLE_GROUP_SCHEMAS)


_registered = False


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore and the resolvers into OmegaConf, once per process (so a
    schema stored over ours afterwards, by a plugin or a test, stays)."""
    global _registered
    if _registered:
        return
    _registered = True
    cs = ConfigStore.instance()
    cs.store(name="dsmexp_schema", node=Config)
    cs.store(name="sample_schema", node=SampleConfig)
    for group, schemas in (GROUP_SCHEMAS | SAMPLE_GROUP_SCHEMAS).items():
        for name, schema in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=schema)
    if not OmegaConf.has_resolver("dirname"):
        OmegaConf.register_new_resolver("dirname", run_dirname)
    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", config_groups)
    if not OmegaConf.has_resolver("settings_help"):
        OmegaConf.register_new_resolver("settings_help", settings_help)


def config_groups() -> str:
    """`group: option, ...` lines for --help: the groups under conf/, without the schema entries the
    ConfigStore holds (Hydra's own listing shows those too) or Hydra's own groups."""
    lines = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir()
                        if p.is_dir() and p.name != "hydra" and p.name not in SAMPLE_GROUPS):
        options = options_of(group.name)
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    launchers = sorted({*options_of("hydra/launcher"), *(name.removesuffix(".yaml") for name in
                        ConfigStore.instance().repo.get("hydra", {}).get("launcher", {}))})
    lines.append(f"hydra/launcher (with -m): {', '.join(launchers)}")
    return "\n".join(lines)


def settings_help() -> str:
    """One line per top-level setting for --help: `key=default` and what it does, from the comments of
    conf/config.yaml (where each setting is written once, with its comment)."""
    lines = []
    for line in (Path(CONF_DIR) / "config.yaml").read_text().splitlines():
        match = re.fullmatch(r"(\w+):\s*(.*?)\s+#\s*(.*)", line)
        if match:
            key, value, comment = match.groups()
            lines.append(f"{f'{key}={value}':<26} {comment}")
    return "\n".join(lines)


def options_of(group: str) -> list[str]:
    """The options of a config group under conf/ (its YAML files)."""
    return sorted(f.stem for f in (Path(CONF_DIR) / group).glob("*.yaml"))


def group_schema(group: str, option: str | None) -> type | None:
    """The schema of option `option` of a group (None when the group or option has none)."""
    schemas = GROUP_SCHEMAS.get(group, {})
    if option in schemas:
        return schemas[option]
    return next(iter(schemas.values())) if len(schemas) == 1 else None
