"""dsmexp: train score models with ISM, DSM and DSM-S and compare them across noise scales."""

__version__ = "0.1.0"

from dsmexp.reference import empirical_score, load_dataset, reference_log_density, reference_score  # noqa: E402
from dsmexp.tables import load_metrics, load_runs, load_sweep_metrics  # noqa: E402

__all__ = ["empirical_score", "load_dataset", "load_metrics", "load_runs", "load_sweep_metrics",
           "reference_log_density", "reference_score"]
