"""Launcher presets and the torch threads a job gets, composed in-process (nothing is launched)."""

import os

import pytest
from hydra.core.hydra_config import HydraConfig

from dsmexp.cli import job_threads
from dsmexp.config import compose


def compose_job(*overrides: str):
    """The job config with its hydra node, as a launcher hands it to the job."""
    return compose(overrides, hydra_config=True)


def test_the_cpu_slurm_preset_asks_for_no_gpu_and_keeps_the_requeues():
    gpu, cpu = (compose_job(f"hydra/launcher={name}").hydra.launcher for name in ("slurm", "slurm_cpu"))
    assert (gpu.gpus_per_node, gpu.cpus_per_task, gpu.mem_gb) == (1, 4, 16)
    assert (cpu.gpus_per_node, cpu.cpus_per_task, cpu.mem_gb) == (None, 1, 4)
    for key in ("timeout_min", "max_num_timeout", "partition", "account", "_target_"):
        assert cpu[key] == gpu[key], key
    assert cpu.max_num_timeout == 3 and cpu._target_.endswith("SlurmLauncher")


@pytest.mark.parametrize("overrides, slurm_cpus, expected", [
    (["hydra/launcher=slurm_cpu"], "3", 3),                       # a Slurm job: the CPUs it was given
    (["hydra/launcher=slurm_cpu", "threads=2"], "3", 2),          # threads wins
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "4", 2),  # joblib splits the job's CPUs
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], None, max(1, (os.cpu_count() or 1) // 2)),
    ([], None, None),                                              # basic launcher: torch's default
])
def test_a_job_trains_with_the_cpus_it_was_given(monkeypatch, overrides, slurm_cpus, expected):
    if slurm_cpus is None:
        monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    else:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", slurm_cpus)
    cfg = compose_job(*overrides)
    HydraConfig.instance().set_config(cfg)
    try:
        assert job_threads(cfg) == expected
    finally:
        HydraConfig.instance().cfg = None
