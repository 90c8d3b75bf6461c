"""dsmexp: train score models with ISM, DSM and DSM-S and compare them across noise scales."""

__version__ = "0.1.0"
