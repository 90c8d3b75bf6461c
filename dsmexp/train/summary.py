"""summary.json: how a run ended and what its numbers depend on beyond the config (threads, chunk size,
kernel, the source commit, the versions), written at the end of a run or when it fails."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

import dsmexp
from dsmexp.records import artifacts
from dsmexp.records.identity import result_config


def write_summary(run_dir: Path, cfg: DictConfig, status: str, error: str | None = None,
                  steps_done: int = 0, diverged_step: int | None = None, final: dict | None = None,
                  wall_time_s: float = 0.0, device: str = "", threads: int | None = None,
                  chunk_size: int | None = None, kernel: str | None = None) -> None:
    """summary.json: status (completed, diverged, failed), progress, final metrics, what the numbers
    depend on beyond the config (threads, chunk size, kernel, source commit, versions), and the config."""
    artifacts.write_json(Path(run_dir) / artifacts.SUMMARY_FILE, {
        "status": status, "steps_done": steps_done, "steps": cfg.steps, "diverged_step": diverged_step,
        "error": error, "final": final or {}, "wall_time_s": wall_time_s, "device": device,
        "threads": threads, "chunk_size": chunk_size, "kernel": kernel, "commit": source_commit(),
        "seed": cfg.seed, "versions": _versions(), "config": result_config(cfg)})


@functools.cache
def source_commit() -> str | None:
    """The git commit of the dsmexp source that runs (with -dirty for uncommitted edits), if it is in git."""
    root = Path(dsmexp.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def _versions() -> dict[str, str]:
    import hydra
    return {"dsmexp": dsmexp.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "hydra": hydra.__version__}
