"""The fused C++ CPU step against the torch path: every metric and both gradients, training trajectories,
the fallback when the kernel cannot be built, and concurrent builds sharing one cache."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsmexp import artifacts, fused, sweeps, training
from dsmexp.divergence import make_kernel
from dsmexp.models import ScoreMLP
from dsmexp.objectives import METRICS, step_terms
from tests.conftest import TINY, make_cfg, run_cli

try:
    fused.load()
    UNAVAILABLE = None
except fused.BuildError as err:
    UNAVAILABLE = f"fused kernel unavailable here: {err}"
needs_kernel = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


def _problem(n: int, m: int, sigma: float, activation: str = "tanh", hidden=(16, 32), dim: int = 2,
             seed: int = 0):
    torch.manual_seed(seed)
    model = ScoreMLP(dim, hidden, activation)
    x = 1.5 * torch.randn(n, dim)
    eps = torch.randn(dim, m, n).permute(1, 2, 0) if sigma > 0 else None  # the runner's layout
    return model, x, eps


def _assert_metrics_close(got: torch.Tensor, want: torch.Tensor, rtol: float) -> None:
    for name, a, b in zip(METRICS, got.tolist(), want.tolist()):
        assert math.isnan(a) == math.isnan(b), name
        if not math.isnan(b):
            assert abs(a - b) <= rtol * abs(b), f"{name}: fused {a!r}, torch {b!r}"


def _assert_grads_close(got: list[torch.Tensor], want: list[torch.Tensor], rtol: float) -> None:
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype
        err = (a.double() - b.double()).norm() / b.double().norm()
        assert err <= rtol, f"parameter {i}: relative difference {err:.2e}"


CASES = [  # N and M not multiples of 16; sigma = 0 (clean ISM) included
    (1000, 37, 0.01, "tanh", (16, 32), 2),
    (203, 5, 1e-4, "tanh", (16, 32), 2),
    (37, 3, 0.5, "tanh", (16, 32), 2),
    (999, 1, 0.0, "tanh", (16, 32), 2),
    (77, 9, 0.05, "sigmoid", (16, 32), 2),
    (77, 9, 0.05, "silu", (16, 32), 2),
    (61, 7, 0.1, "tanh", (20, 9), 3),  # a shape without a compiled specialisation
]


@needs_kernel
@pytest.mark.parametrize("n,m,sigma,activation,hidden,dim", CASES)
def test_fused_matches_torch_path(n, m, sigma, activation, hidden, dim):
    model, x, eps = _problem(n, m, sigma, activation, hidden, dim)
    kernel, torch_kernel = fused.FusedKernel(model), make_kernel(model)
    losses = ("ism",) if sigma == 0 else ("ism", "dsm", "dsm_s")
    for loss in losses:
        for diagnostics in (True, False):
            got = kernel.step_terms(x, eps, sigma, loss, diagnostics)
            want = step_terms(torch_kernel, x, eps, sigma, loss, diagnostics, chunk_size=500)
            _assert_metrics_close(got.metrics, want.metrics, 1e-5)
            _assert_grads_close(got.grad, want.grad, 1e-5)  # ISM's gradient for ism, DSM-S's otherwise


@needs_kernel
def test_fused_gradients_match_float64_autograd_reference():
    """Both gradients against the float64 torch path (itself checked against autograd)."""
    model, x, eps = _problem(301, 11, 0.02)
    got = {loss: fused.FusedKernel(model).step_terms(x, eps, 0.02, loss) for loss in ("ism", "dsm_s")}
    model64 = model.double()
    for loss in ("ism", "dsm_s"):
        want = step_terms(make_kernel(model64), x.double(), eps.double(), 0.02, loss)
        _assert_metrics_close(got[loss].metrics, want.metrics, 1e-6)
        _assert_grads_close([g.double() for g in got[loss].grad], want.grad, 1e-6)


@needs_kernel
def test_fused_step_is_bitwise_the_same_on_any_number_of_threads():
    model, x, eps = _problem(1000, 23, 0.01)
    kernel = fused.FusedKernel(model)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 1):
            torch.set_num_threads(n)
            results.append(kernel.step_terms(x, eps, 0.01, "ism"))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert torch.equal(results[0].metrics.nan_to_num(), other.metrics.nan_to_num())
        assert all(torch.equal(a, b) for a, b in zip(results[0].grad, other.grad))


def _train(tmp_path: Path, kernel: str, *overrides: str) -> dict:
    cfg = make_cfg("steps=200", "noise_samples=7", "dataset.n_samples=101", "eval_every=0",
                   "eval_samples=200", "grid_size=8", f"kernel={kernel}", *overrides)
    run_dir = tmp_path / kernel
    assert training.run(cfg, run_dir) == "completed"
    return artifacts.read_metrics(run_dir / artifacts.METRICS_FILE) | {
        "summary": artifacts.read_summary(run_dir)}


@needs_kernel
@pytest.mark.parametrize("overrides", [("loss=dsm_s",), ("loss=ism", "sigma=0", "diagnostics_every=3")])
def test_200_training_steps_agree_to_float32_rounding(tmp_path, overrides):
    a, b = _train(tmp_path, "fused", *overrides), _train(tmp_path, "torch", *overrides)
    assert a["summary"]["kernel"] == "fused" and b["summary"]["kernel"] == "torch"
    assert len(a["loss"]) == len(b["loss"]) == 200
    for name in ("loss", "norm", "fit_ism", "grad_norm_ism", "grad_norm_dsm"):
        x, y = a[name], b[name]
        finite = ~torch.isnan(torch.as_tensor(y))
        assert (torch.isnan(torch.as_tensor(x)) == ~finite).all(), name
        if not finite.any():
            continue
        rel = (torch.as_tensor(x - y)[finite].abs() / torch.as_tensor(y)[finite].abs()).max().item()
        assert rel < 1e-4, f"{name}: {rel:.2e}"  # float32 rounding, compounded over 200 Adam steps
    assert a["esm"][-1] == pytest.approx(b["esm"][-1], rel=1e-4)


def test_forced_build_failure_falls_back_to_torch_and_says_why(tmp_path):
    env = {"CXX": str(tmp_path / "no-such-compiler")}
    proc = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=env)
    lines = [line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if "kernel:" in line]
    assert len(lines) == 1 and "kernel: torch" in lines[0] and "no-such-compiler not found" in lines[0]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["kernel"] == "torch"
    with sweeps.write_runs_table(tmp_path).open() as f:
        assert [row["kernel"] for row in csv.DictReader(f)] == ["torch"]  # runs.csv records it too
    refused = run_cli(*TINY, "kernel=fused", f"hydra.run.dir={tmp_path / 'refused'}", cwd=tmp_path, env=env,
                      check=False)
    assert refused.returncode == 1 and not (tmp_path / "refused").exists()
    assert refused.stderr.strip().splitlines()[-1].startswith("dsmexp: error: kernel=fused: ")


def test_settings_outside_the_kernel_use_torch_or_are_refused():
    assert fused.choose(make_cfg("dtype=float64"))[0] == "torch"
    assert fused.choose(make_cfg("model.hidden=[8]"))[0] == "torch"
    assert fused.choose(make_cfg("model.activation=softplus"))[0] == "torch"
    assert fused.choose(make_cfg("kernel=torch")) == ("torch", "kernel=torch")
    with pytest.raises(fused.ConfigError, match=r"^kernel=fused: model.hidden=\[8, 8, 8\]"):
        fused.check_config(make_cfg("kernel=fused", "model.hidden=[8,8,8]"))
    with pytest.raises(fused.ConfigError, match="kernel=gpu: must be one of auto, fused, torch"):
        fused.check_config(make_cfg("kernel=gpu"))


BUILD_SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, format="%(message)s")
from dsmexp import fused
from dsmexp.models import ScoreMLP
torch.manual_seed(0)
model = ScoreMLP(2, [16, 32], "tanh")
x, eps = torch.randn(50, 2), torch.randn(2, 3, 50).permute(1, 2, 0)
print(repr(fused.FusedKernel(model).step_terms(x, eps, 0.1, "dsm").metrics.tolist()))
"""


@needs_kernel
@pytest.mark.slow
def test_two_processes_building_into_one_cache_at_once(tmp_path):
    env = os.environ | {fused.CACHE_ENV: str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]  # both loaded a working kernel
    assert sum(err.count("compiling the fused CPU kernel") for _, err in outs) == 1
    built = list((tmp_path / "cache").glob("dsmexp_fused_*/dsmexp_fused_*.so"))
    assert len(built) == 1
    # another install of the same source (a wheel in a venv, a second checkout) loads that build as it is
    copy = tmp_path / "elsewhere" / fused.SOURCE.name
    copy.parent.mkdir()
    copy.write_bytes(fused.SOURCE.read_bytes())
    before = built[0].stat().st_mtime_ns
    moved = f"from dsmexp import fused\nfused.SOURCE = __import__('pathlib').Path({str(copy)!r})\n"
    other = subprocess.run([sys.executable, "-c", BUILD_SCRIPT.replace("from dsmexp import fused\n", moved)],
                           env=env, text=True, capture_output=True, timeout=600)
    assert other.returncode == 0 and other.stdout == outs[0][0], other.stderr
    assert built[0].stat().st_mtime_ns == before  # not rebuilt
