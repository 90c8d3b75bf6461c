"""Records of runs: metrics.csv (one reader, one writer), the other run files, a run's identity, the
run-directory lock, sweeps and the pandas tables (docs/architecture.md, Layers)."""
