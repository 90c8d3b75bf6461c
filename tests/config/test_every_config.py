"""Every option of every config group, and every experiment at every profile with every job of its sweep
grid, composes and passes the config checks; and each group's options are exactly the names its code
knows (the YAML files and the registries agree both ways)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dsmexp.config import CONF_DIR, compose, validate
from dsmexp.config.dataset import DATASET_SCHEMAS
from dsmexp.config.model import MODEL_SCHEMAS
from dsmexp.core.datasets import DATASETS
from dsmexp.core.networks import MODELS
from dsmexp.core.objectives.registry import OBJECTIVES
from dsmexp.core.optimizers import OPTIMIZERS
from dsmexp.errors import ConfigError

CONF = Path(CONF_DIR)
GROUPS = ("dataset", "loss", "model", "optimizer", "logger")
NEEDS = {("model", "custom"): ["model.target=tests.user_modules.ResidualMLP"],  # model=custom names a module
         ("loss", "dsm"): [], ("loss", "dsm_s"): [],
         ("loss", "hybrid"): ["experiment=multiscale"]}  # hybrid trains across a noise schedule only


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_of_every_group_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}", *NEEDS.get((group, option), [])])
    assert cfg[group].name == option
    validate(cfg)


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_every_launcher_composes(launcher):
    cfg = compose([f"hydra/launcher={launcher}"], hydra_config=True)
    assert OmegaConf.select(cfg, "hydra.launcher._target_")


def _grid(cfg) -> list[list[str]]:
    """The jobs of a preset's sweep: the product of its sweeper params' comma-separated values."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    axes = [[f"{key}={value.strip()}" for value in str(values).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


def _value(text: str):
    """A command-line value as Hydra reads it (numbers by value, the rest as YAML)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


@pytest.mark.parametrize(("experiment", "profile"),
                         list(itertools.product(options("experiment"), options("profile"))))
def test_every_job_of_every_experiment_at_every_profile_validates(experiment, profile):
    preset = [f"experiment={experiment}", f"+profile={profile}"]
    jobs = _grid(compose(preset, hydra_config=True))
    assert jobs, f"experiment={experiment} has no sweep grid"
    composed: dict[tuple[str, ...], object] = {}  # a group choice needs Hydra; a value is set on the result
    checked = 0
    for job in jobs:
        groups = tuple(o for o in job if o.split("=")[0] in GROUPS)
        if groups not in composed:
            composed[groups] = compose([*preset, *groups])
        cfg = composed[groups].copy()
        for item in job:
            key, value = item.split("=", 1)
            if key not in GROUPS:
                OmegaConf.update(cfg, key, _value(value))
        try:
            validate(cfg)
            checked += 1
        except ConfigError as err:
            assert err.sweep_skippable, f"{' '.join(job)}: {err}"  # only grid points the sweeper skips
    assert checked > 0


def test_each_group_lists_exactly_the_names_its_code_knows():
    assert options("loss") == sorted(OBJECTIVES)
    assert options("dataset") == sorted(DATASET_SCHEMAS) == sorted(DATASETS)
    assert options("optimizer") == sorted(OPTIMIZERS)
    assert options("model") == sorted(MODEL_SCHEMAS) == sorted(MODELS)


def test_help_describes_every_setting_and_lists_the_launchers():
    from dataclasses import fields

    from hydra.core.plugins import Plugins

    from dsmexp.config.root import Config
    from dsmexp.config.store import config_groups, settings_help

    described = {line.split("=", 1)[0] for line in settings_help().splitlines()}
    assert described == {f.name for f in fields(Config)} - set(GROUPS)  # each key once, with its comment
    Plugins.instance()  # the launcher plugins register their configs when Hydra scans them
    launchers = next(line for line in config_groups().splitlines() if line.startswith("hydra/launcher"))
    assert all(name in launchers for name in ("basic", "joblib", "slurm", "slurm_cpu", "submitit_local"))
