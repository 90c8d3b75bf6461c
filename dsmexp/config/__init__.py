"""The configuration layer: one schema per conf/ group (dataset.py, loss.py, model.py, optimizer.py and
root.py for the top level), each with its pure checks; validate (checks.py) runs them all; store.py
registers them in Hydra's ConfigStore; compose.py composes a config in-process (docs/architecture.md)."""

from dsmexp.config.checks import validate
from dsmexp.config.compose import compose, load_dataset
from dsmexp.config.store import CONF_DIR, register_configs

__all__ = ["CONF_DIR", "compose", "load_dataset", "register_configs", "validate"]
