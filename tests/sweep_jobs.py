"""Tiny real runs laid out as the jobs of a sweep (in-process, kernel=torch), for the report's tests."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg


def sweep_job(sweep: Path, *overrides: str) -> Path:
    """Train TINY + overrides in sweep/<overrides>, with the .hydra files a Hydra job leaves; its dir."""
    cfg = make_cfg(*TINY, "kernel=torch", "eval_samples=200", *overrides)
    run_dir = sweep / ",".join(overrides)
    assert trainer.run(cfg, run_dir) in ("completed", "diverged")
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")
    return run_dir


def stop_early(run_dir: Path, rows: int) -> None:
    """Make a finished run look like one stopped after `rows` steps: no summary.json, rows lines logged."""
    (run_dir / "summary.json").unlink()
    metrics = run_dir / "metrics.csv"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:rows + 1]))
