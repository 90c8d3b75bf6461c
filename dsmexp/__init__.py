"""dsmexp: train score models with ISM, DSM and DSM-S and compare them across noise scales.

The Python API (load_metrics, load_levels, load_runs, load_sweep_metrics, load_dataset, reference_score,
reference_log_density, reference_divergence, empirical_score) is imported on first use, so
`import dsmexp.errors` (the Hydra plugin) pulls in neither torch nor pandas (docs/architecture.md,
Layers).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"empirical_score": "dsmexp.core.reference", "load_dataset": "dsmexp.config.compose",
        "reference_log_density": "dsmexp.api", "reference_score": "dsmexp.api",
        "reference_divergence": "dsmexp.api",
        "load_metrics": "dsmexp.records.metrics_file", "load_runs": "dsmexp.records.tables",
        "load_levels": "dsmexp.records.levels_file",
        "load_sweep_metrics": "dsmexp.records.tables"}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dsmexp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
