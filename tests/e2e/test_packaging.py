"""The package as users install it: a built wheel in a fresh virtual environment, used from another
directory, finds its configs, presets and profiles and registers the dsmexp sweeper."""

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

from tests.conftest import SESSION_KERNEL_CACHE

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_config_groups_without_the_internal_schema(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dsmexp", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    groups = proc.stdout.split("== Configuration groups ==", 1)[1].split("== Settings ==", 1)[0]
    assert "loss: dsm, dsm_cv, dsm_s, fd_ssm, hybrid, ism, ssm, ssm_vr, tsm, tsm_mix" in groups
    assert "dataset: checkerboard, gaussian, gmm, half_moon, square, swiss_roll" in groups
    assert "optimizer: adam, adamw, sgd" in groups and "model: custom, mlp" in groups
    assert "profile: dimension_quick, multiscale_paper, multiscale_quick, paper, quick, smoke" in groups
    assert "experiment: dimension, dimension_dsm_s, fig1, fig2, fig3, multiscale, ncsn_toy, paper" in groups
    launchers = "hydra/launcher (with -m): basic, joblib, slurm, slurm_cpu, submitit_local, submitit_slurm"
    assert launchers in groups
    assert "sampler:" not in groups  # the sample command's group (python -m dsmexp.sample --help)
    assert "schema" not in proc.stdout and groups.count("hydra/") == 1  # Hydra's own groups are its help's
    settings = proc.stdout.split("== Settings ==", 1)[1]
    assert "sigma=0.01                 noise std; 0 trains on clean data (ISM only)" in settings


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_from_any_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(dist.glob("dsmexp-*.whl"))
    shipped = zipfile.ZipFile(wheel).namelist()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in shipped if n.endswith("/METADATA"))).decode()
    torch_pin = next(Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
                     if line.startswith("Requires-Dist: torch"))
    assert "<" in str(torch_pin.specifier) and torch_pin.specifier.contains(torch.__version__.split("+")[0])
    assert "dsmexp/core/objectives/csrc/fused_step.cpp" in shipped  # the fused kernel's source
    assert "dsmexp/conf/config.yaml" in shipped and "dsmexp/conf/experiment/paper.yaml" in shipped
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, hydra, ...) come from this environment's site-packages, which holds no
    # copy of dsmexp (an editable install is a finder this path entry does not load)
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = subprocess.run([python, "-c", "import dsmexp"], cwd=elsewhere, capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'dsmexp'" in missing.stderr
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True,
                   capture_output=True, text=True)
    where = subprocess.run([python, "-c", "import dsmexp.config as c; print(c.__file__, c.CONF_DIR)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(str(env_dir)) for p in where)  # the installed code and its own conf/
    helped = subprocess.run([env_dir / "bin" / "dsmexp", "--help"], cwd=elsewhere, capture_output=True,
                            text=True, check=True).stdout
    for command in ("dsmexp-figures", "dsmexp-dimension", "dsmexp-bench"):  # make figures / dimension / bench
        usage = subprocess.run([env_dir / "bin" / command, "--help"], cwd=elsewhere, capture_output=True,
                               text=True, check=True).stdout
        assert usage.startswith(f"usage: {command} ")
    assert "experiment: dimension, dimension_dsm_s, fig1, fig2, fig3, multiscale, ncsn_toy, paper" in helped
    assert "profile: dimension_quick, multiscale_paper, multiscale_quick, paper, quick, smoke" in helped
    tiny = ["steps=3", "noise_samples=2", "dataset.n_samples=32", "grid_size=4", "eval_samples=100",
            "threads=1"]
    libraries = {p: p.stat().st_mtime_ns for p in SESSION_KERNEL_CACHE.glob("*.so")}
    one = subprocess.run([python, "-m", "dsmexp", *tiny, "hydra.run.dir=outputs/one"], cwd=elsewhere,
                         check=True, capture_output=True, text=True, timeout=300)
    summary = json.loads((elsewhere / "outputs" / "one" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 3
    # another environment sharing the kernel cache loads the session's build as it is: no compile
    assert "compiling the fused CPU kernel" not in one.stdout + one.stderr
    assert {p: p.stat().st_mtime_ns for p in SESSION_KERNEL_CACHE.glob("*.so")} == libraries
    assert summary["kernel"] == ("fused" if libraries else "torch")
    # a preset, a profile and the dsmexp sweeper (it writes runs.csv) from the installed package
    subprocess.run([env_dir / "bin" / "dsmexp", "-m", "experiment=fig1", "+profile=smoke", *tiny,
                    "hydra.sweep.dir=outputs/sweep"], cwd=elsewhere, check=True, capture_output=True,
                   text=True)
    runs = (elsewhere / "outputs" / "sweep" / "runs.csv").read_text().splitlines()
    assert len(runs) == 3 and all(",completed," in row for row in runs[1:])


def test_hydra_finds_the_sweeper_plugin_and_importing_it_imports_no_torch():
    """Hydra imports every plugin module for every Hydra app in the environment: ours must stay light."""
    probe = ("import sys\n"
             "from hydra.core.plugins import Plugins\n"
             "from hydra.plugins.sweeper import Sweeper\n"
             "names = [p.__module__ + '.' + p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
             "print(names)\n"
             "print(sorted(m for m in ('torch', 'dsmexp', 'pandas', 'numpy') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    found, heavy = proc.stdout.splitlines()
    assert "hydra_plugins.dsmexp_sweeper.dsmexp_sweeper.DsmexpSweeper" in found
    assert heavy == "[]", f"importing the plugins imported {heavy}"
