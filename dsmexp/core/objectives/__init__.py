"""Objectives: the registry (one row per objective), their terms and sums, the one step function, the
estimators of ISM and the fused C++ step."""
