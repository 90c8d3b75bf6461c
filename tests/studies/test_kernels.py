"""The noise-kernel study: its small-sigma prediction (DSM's fitting-term variance is |s|^2 I / sigma^2,
I the kernel's Fisher information) against a step's own logged standard error, its verdicts, the sweep
names of `make figures KEY=VALUE`, and `dsmexp-kernels --profile smoke` end to end (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsmexp import load_dataset
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.noise import NoiseKernel, draw_noise
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS
from dsmexp.records.sweeps import Run
from dsmexp.studies.kernels import claims
from dsmexp.studies.kernels.make import KERNELS, sweep_name
from dsmexp.studies.paper import make as paper

pytestmark = pytest.mark.timeout(300)

NOISES = [{"kernel": "gaussian"}, {"kernel": "laplace"}, {"kernel": "student_t", "df": 3.0},
          {"kernel": "student_t", "df": 1.5}]


def _run(noise: dict, sigma: float, metrics: dict, seed: int = 0, loss: str = "dsm_s", m: int = 200,
         n: int = 500) -> Run:
    config = {"noise_samples": m, "dataset": {"n_samples": n}, "noise": noise, "seed": seed}
    arrays = {k: np.atleast_1d(v) for k, v in metrics.items()}
    return Run(Path("run"), loss, sigma, "completed", config, arrays, {})


@pytest.mark.parametrize("noise", NOISES, ids=lambda n: f"{n['kernel']}-{n.get('df', '')}")
def test_the_normalised_variance_is_the_kernels_fisher_information(noise):
    """On a fixed network and half-moon data at sigma = 1e-3, sigma^2 P fit_dsm_se^2 / (2 norm) from the
    step's own metrics is the kernel's Fisher information (1, 1, 5/7, 3.5/5.5) within 3%: 100000 points."""
    torch.manual_seed(0)
    model = ScoreMLP(2, (16, 32), "tanh")
    x = torch.as_tensor(load_dataset("half_moon").sample(500, 0), dtype=torch.float32)
    kernel = NoiseKernel(noise["kernel"], noise.get("df", 3.0))
    eps = draw_noise(x, 200, False, torch.Generator().manual_seed(1), kernel)
    terms = step_terms(make_kernel(model), x, eps, 1e-3, "dsm_s", diagnostics=False, noise=kernel)
    row = dict(zip(METRICS, terms.metrics.tolist()))
    value = claims.normalised_variance(_run(noise, 1e-3, row))
    assert value == pytest.approx(claims.fisher_information(noise, 2), rel=0.03)


def test_the_kernel_claims_judge_each_seed():
    """A seed whose normalised variance is off the prediction by more than the tolerance fails the
    Fisher claim; the heavier-noise claim compares with the Gaussian run of the same seed."""
    noise = {"kernel": "student_t", "df": 3.0}
    predicted = claims.fisher_information(noise, 2)

    def metrics(ratio: float, sigma: float) -> dict:  # fit_dsm_se giving `ratio` x the prediction
        norm = 2.0
        se = np.sqrt(ratio * predicted * 2 * norm / (sigma**2 * 200 * 500))
        return {"fit_dsm_se": [se] * 3, "norm": [norm] * 3, "fit_ism": [0.0] * 3, "fit_dsm": [0.0] * 3,
                "fit_ism_se": [1.0] * 3}

    runs = [_run(noise, s, metrics(1.0 if seed == 0 else 1.5, s), seed) for seed in (0, 1)
            for s in claims.SMALL]
    fisher = claims.fisher_claim("student_t", noise, runs)
    assert fisher.verdict == "mixed" and [ok for ok, _ in fisher.results] == [True, False]
    gaussian = [_run({"kernel": "gaussian"}, 1e-4, metrics(1 / predicted, 1e-4), seed) for seed in (0, 1)]
    heavier = claims.heavier_claim("student_t", runs, gaussian)
    assert heavier.verdict == "mixed" and "seed 1: ratio 1.0714" in heavier.numbers  # 1.5 x 5/7 over 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_kernel_study_at_the_smoke_profile(tmp_path):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dsmexp.studies.kernels.make", "--profile", "smoke", "--seeds", "1",
               "--launcher", "basic"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "outputs" / "figures" / "kernels-smoke"
    report = (out / "report.md").read_text()
    assert "Smoke profile: not evidence" in report
    for label in ("gaussian", "laplace", "student_t (df 3)"):
        assert f"| Prop. 2 holds under the {label} kernel" in report
    assert "| student_t (df 3) | 0.7143 |" in report
    assert (out / "figure14.png").stat().st_size > 10_000
    for label in ("gaussian", "laplace", "student_t"):
        assert "noise kernel" in (out / label / "report.md").read_text()
        assert (out / label / "figure2.png").exists()
    assert (tmp_path / "outputs" / "sweeps" / "figures-smoke-noise.kernel-laplace" / "runs.csv").exists()


def test_figure_overrides_name_their_own_sweep_and_bad_ones_are_one_line(capsys):
    """`make figures noise.kernel=laplace`: the overrides name the sweep (sorted, so their order does not
    matter); a hydra key, a sweep of values or a word without '=' is refused before any run starts."""
    assert sweep_name("quick", KERNELS["student_t"]) == "figures-quick-noise.df-3-noise.kernel-student_t"
    assert sweep_name("paper", ["noise.kernel=student_t", "noise.df=3"]) == sweep_name(
        "paper", ["noise.df=3", "noise.kernel=student_t"])
    assert sweep_name("quick", []) == "figures-quick"
    for bad in ("hydra.sweep.dir=x", "sigma=0.1,0.2", "laplace"):
        with pytest.raises(SystemExit) as exit_:
            paper.main(["--profile", "smoke", bad])
        assert exit_.value.code == 2
        assert f"{bad}: an override is KEY=VALUE with one value" in capsys.readouterr().err
