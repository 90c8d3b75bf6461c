"""The fused C++ CPU step against the torch path: every metric and both gradients, training trajectories,
the fallback when the kernel cannot be built, and concurrent builds sharing one cache."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dsmexp import safe_io
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.noise import NoiseKernel, draw_noise
from dsmexp.core.objectives import fused, fused_build
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS
from dsmexp.errors import ConfigError
from dsmexp.records import artifacts, metrics_file, tables
from dsmexp.train import trainer
from dsmexp.train.preflight import preflight
from tests.conftest import TINY, make_cfg, run_cli

try:
    fused_build.load()
    UNAVAILABLE = None
except fused_build.BuildError as err:
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
        if name.startswith("grad_var") and not math.isnan(b):  # a variance of float32 group sums
            assert abs(a - b) <= 5e-2 * abs(b), f"{name}: fused {a!r}, torch {b!r}"
            continue
        if not math.isnan(b):
            assert abs(a - b) <= rtol * abs(b), f"{name}: fused {a!r}, torch {b!r}"


def _assert_fits_within_spread(got: torch.Tensor, want: torch.Tensor, count: int, rtol: float) -> None:
    """The fitting terms' means agree within rtol of their per-point spread (SE x sqrt(count))."""
    for name in ("fit_ism", "fit_dsm"):
        a, b = got[METRICS.index(name)].item(), want[METRICS.index(name)].item()
        spread = want[METRICS.index(f"{name}_se")].item() * math.sqrt(count)
        assert abs(a - b) <= rtol * spread, f"{name}: fused {a!r}, torch {b!r}, spread {spread:.3g}"


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
            # the same gradient-variance groups on both paths: the fused kernel's at most FUSED_GROUPS
            rows = max(500 // n, 1, -(-m // fused.FUSED_GROUPS))
            got = kernel.step_terms(x, eps, sigma, loss, diagnostics, 500)
            want = step_terms(torch_kernel, x, eps, sigma, loss, diagnostics, chunk_size=rows * n)
            _assert_metrics_close(got.metrics, want.metrics, 1e-5)
            _assert_grads_close(got.grad, want.grad, 1e-5)  # ISM's gradient for ism, DSM-S's otherwise


@needs_kernel
@pytest.mark.parametrize("kind,sigma,antithetic", [("laplace", 0.05, False), ("student_t", 0.05, False),
                                                   ("student_t", 1e-2, True), ("laplace", 1e-4, False),
                                                   ("laplace", 0.5, True)])
def test_fused_matches_torch_path_under_other_noise_kernels(kind, sigma, antithetic):
    """Laplace and Student-t noise: the C++ code takes r = -grad_z log q(z|x) beside eps; every metric
    (fit_dsm = -<s, grad_z log q(z|x)>, const_dsm, loss_dsm, their SEs) and the gradients are the torch
    path's, in one call and in several gradient-variance groups (antithetic pairs at sigma >= 1e-2: below,
    grad_var under pairs is float32 rounding, see the next test)."""
    model, x, _ = _problem(301, 6, sigma)
    noise = NoiseKernel(kind, 3.0)
    eps = draw_noise(x, 6, antithetic, torch.Generator().manual_seed(1), noise)
    kernel, torch_kernel = fused.FusedKernel(model), make_kernel(model)
    for loss in ("ism", "dsm", "dsm_s"):
        for chunk in (6 * 301, 2 * 301):
            got = kernel.step_terms(x, eps, sigma, loss, True, chunk, antithetic=antithetic, noise=noise)
            want = step_terms(torch_kernel, x, eps, sigma, loss, True, chunk_size=chunk,
                              antithetic=antithetic, noise=noise)
            if antithetic:  # a pair's odd terms cancel in the means: float32 rounding of s times |r|
                _assert_fits_within_spread(got.metrics, want.metrics, x.shape[0] * 6, 1e-5)
            _assert_metrics_close(got.metrics, want.metrics, 1e-3 if antithetic else 1e-5)
            _assert_grads_close(got.grad, want.grad, 1e-5)
    gaussian = kernel.step_terms(x, eps, sigma, "dsm_s", True, 6 * 301, antithetic=antithetic)
    other = kernel.step_terms(x, eps, sigma, "dsm_s", True, 6 * 301, antithetic=antithetic, noise=noise)
    fit = METRICS.index("fit_dsm")
    assert abs(gaussian.metrics[fit] - other.metrics[fit]) > 1e-3 * abs(gaussian.metrics[fit])  # r is used


@needs_kernel
@pytest.mark.parametrize("n,m,sigma,antithetic", [(1000, 37, 0.01, False), (203, 5, 1e-4, False),
                                                  (37, 3, 0.5, False), (77, 10, 0.05, True)])
def test_fused_denoising_variants_match_the_torch_path(n, m, sigma, antithetic):
    """dsm_cv (DSM-S's pass at z plus the control variate at the clean points, added in torch), tsm and
    tsm_mix (a third reverse pass for s - t): every metric (fit_vr, loss_vr, grad_norm_vr, grad_var of
    the trained gradient next to the exact terms) and the trained gradient are the torch path's, with and
    without the diagnostics, in one call or several gradient-variance groups. Below sigma = 1e-2 dsm_cv's
    fit_vr is the difference of two terms of order 1 / sigma (<s(z), eps> / sigma and <s(x), eps> / sigma),
    so both paths' float32 rounding of those terms shows at 1e-4 of it: there it is held within 1e-6 of
    fit_dsm (the float64 path's fit_vr at sigma = 1e-4 was 2.3e-5 from the fused and 1.7e-5 from the torch
    path's, fit_dsm -51), and its gradient, the difference of two gradients of order 1 / sigma, within
    1e-6 of DSM-S's gradient (at 1e-4 the float64 path's was 3.1e-4 of its norm from the fused and 2.3e-4
    from the torch path's; DSM-S's is 1150 times larger); under antithetic pairs (odd terms cancel)
    fit_vr within 1e-5 of its per-point spread."""
    model, x, eps = _problem(n, m, sigma)
    if antithetic:
        eps = draw_noise(x, m, True, torch.Generator().manual_seed(1))
    clean = -x / 2.25  # grad log p of N(0, 1.5^2 I), the data's law in _problem
    kernel, torch_kernel = fused.FusedKernel(model), make_kernel(model)
    rows = max(500 // n, 1, -(-m // fused.FUSED_GROUPS))
    rows += rows % 2 if antithetic else 0
    dsm = kernel.step_terms(x, eps, sigma, "dsm_s", True, 500, antithetic=antithetic)
    dsm_norm = torch.cat([g.reshape(-1) for g in dsm.grad]).norm().item()
    for loss in ("dsm_cv", "tsm", "tsm_mix"):
        for diagnostics in (True, False):
            got = kernel.step_terms(x, eps, sigma, loss, diagnostics, 500, antithetic=antithetic,
                                    clean_score=clean, kappa=0.3)
            want = step_terms(torch_kernel, x, eps, sigma, loss, diagnostics, chunk_size=rows * n,
                              clean_score=clean, kappa=0.3, antithetic=antithetic)
            small = loss == "dsm_cv" and sigma < 1e-2
            cancels = small or antithetic
            if cancels:
                scale = (1e-6 * abs(want.metrics[METRICS.index("fit_dsm")].item()) if small
                         else 1e-5 * want.metrics[METRICS.index("fit_vr_se")].item() * math.sqrt(n * m))
                for name in ("fit_vr", "loss_vr", "loss"):
                    a, b = got.metrics[METRICS.index(name)].item(), want.metrics[METRICS.index(name)].item()
                    assert abs(a - b) <= scale, (loss, name, a, b, scale)
            _assert_metrics_close(got.metrics, want.metrics, 1e-3 if cancels else 1e-5)
            trained = torch.cat([g.reshape(-1) for g in want.grad]).norm().item()
            _assert_grads_close(got.grad, want.grad, 1e-6 * dsm_norm / trained if small else 1e-5)
    tsm = kernel.step_terms(x, eps, sigma, "tsm", True, 500, antithetic=antithetic, clean_score=clean)
    difference = [a - b for a, b in zip(dsm.grad, tsm.grad)]
    assert torch.cat([g.reshape(-1) for g in difference]).norm() > 1e-3 * dsm_norm  # the target is used


@needs_kernel
@pytest.mark.parametrize("sigma", [1e-2, 0.1])
def test_fused_antithetic_pairs_give_the_torch_paths_terms_and_the_variance_over_draws(sigma):
    """With antithetic pairs the fused kernel keeps each (eps, -eps) pair inside one group: on the same
    noise its metrics and gradient are the torch path's (same groups), and over 300 fresh paired draws
    its mean grad_var (DSM-S) and grad_var_ism are within 4 combined standard errors of P times the
    trace of the step gradient's covariance across the draws (the torch path holds these against closed
    forms, tests/core/test_variance.py). Below sigma = 1e-2 a pair's ISM gradients agree to within float32
    rounding (their difference is O(sigma^2)), so the fused kernel's grad_var_ism there is its rounding."""
    n, m, repeats = 200, 8, 300
    model, x, _ = _problem(n, m, sigma)
    kernel, torch_kernel = fused.FusedKernel(model), make_kernel(model)
    gen = torch.Generator().manual_seed(0)
    logged, flats = {"grad_var": [], "grad_var_ism": []}, {"dsm": [], "ism": []}
    for r in range(repeats):
        eps = draw_noise(x, m, True, gen)
        got = kernel.step_terms(x, eps, sigma, "dsm_s", True, 2 * n, antithetic=True)
        row = dict(zip(METRICS, got.metrics.tolist()))
        if r == 0:  # groups of one pair of rows on both paths; a pair's <s, eps> / sigma terms cancel to
            # a mean far below them, so float32 rounding shows at 1e-5 of the mean
            want = step_terms(torch_kernel, x, eps, sigma, "dsm_s", True, chunk_size=2 * n, antithetic=True)
            _assert_metrics_close(got.metrics, want.metrics, 1e-4)
            _assert_grads_close(got.grad, want.grad, 1e-5)
        for name in logged:
            logged[name].append(row[name])
        flats["dsm"].append(torch.cat([g.reshape(-1) for g in got.grad]).double())
        ism = step_terms(torch_kernel, x, eps, sigma, "ism", False, chunk_size=m * n, trained_only=True)
        flats["ism"].append(torch.cat([g.reshape(-1) for g in ism.grad]).double())
    for name, grads in (("grad_var", flats["dsm"]), ("grad_var_ism", flats["ism"])):
        g = torch.stack(grads)
        spread = n * m * ((g - g.mean(0)) ** 2).sum(1) * repeats / (repeats - 1)
        truth, truth_se = spread.mean().item(), spread.std().item() / math.sqrt(repeats)
        values = torch.tensor(logged[name], dtype=torch.float64)
        estimate, estimate_se = values.mean().item(), values.std().item() / math.sqrt(repeats)
        assert abs(estimate - truth) < 4 * math.hypot(truth_se, estimate_se), (name, estimate, truth)


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
    assert trainer.run(cfg, run_dir) == "completed"
    return metrics_file.read_metrics(run_dir / metrics_file.METRICS_FILE) | {
        "summary": artifacts.read_summary(run_dir)}


@needs_kernel
@pytest.mark.parametrize("overrides", [("loss=dsm_s",), ("loss=ism", "sigma=0", "diagnostics_every=3"),
                                       ("loss=tsm", "diagnostics_every=2"),
                                       ("loss=dsm_cv", "antithetic=true", "noise_samples=8")])
def test_200_training_steps_agree_to_float32_rounding(tmp_path, overrides):
    a, b = _train(tmp_path, "fused", *overrides), _train(tmp_path, "torch", *overrides)
    assert a["summary"]["kernel"] == "fused" and b["summary"]["kernel"] == "torch"
    assert len(a["loss"]) == len(b["loss"]) == 200
    for name in ("loss", "norm", "fit_ism", "grad_norm_ism", "grad_norm_dsm", "grad_norm_vr"):
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
    with tables.write_runs_table(tmp_path).open() as f:
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
    with pytest.raises(ConfigError, match=r"^kernel=fused: model.hidden=\[8, 8, 8\]"):
        preflight(make_cfg("kernel=fused", "model.hidden=[8,8,8]"))
    custom = make_cfg("kernel=fused", "model=custom", "model.target=tests.user_modules.ResidualMLP")
    with pytest.raises(ConfigError, match=r"^kernel=fused: model=custom: the fused kernel covers"):
        preflight(custom)
    # kernel=auto keeps the torch path where its matrix products are faster (wide middle layers)
    assert fused.choose(make_cfg("model.hidden=[128,128]"))[0] == "torch"
    assert fused.not_applicable(make_cfg("kernel=fused", "model.hidden=[128,128]")) is None
    with pytest.raises(ConfigError, match="kernel=gpu: must be one of auto, fused, torch"):
        preflight(make_cfg("kernel=gpu"))


BUILD_SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, format="%(message)s")
from dsmexp.core.objectives import fused, fused_build
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.noise import draw_noise
torch.manual_seed(0)
model = ScoreMLP(2, [16, 32], "tanh")
x, eps = torch.randn(50, 2), torch.randn(2, 3, 50).permute(1, 2, 0)
print(fused.__file__)
print(repr(fused.FusedKernel(model).step_terms(x, eps, 0.1, "dsm").metrics.tolist()))
"""


def _compiles(err: str) -> int:
    """How many compiles a build script's log says it started."""
    return sum(line.startswith("compiling the fused CPU kernel") for line in err.splitlines())


@needs_kernel
@pytest.mark.slow
def test_two_processes_building_into_one_cache_at_once(tmp_path):
    env = os.environ | {fused_build.CACHE_ENV: str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]  # both loaded a working kernel
    assert sum(_compiles(err) for _, err in outs) == 1
    built = list((tmp_path / "cache").glob("dsmexp_fused_*.so"))
    assert len(built) == 1 and not list((tmp_path / "cache").glob("*.tmp"))
    # another install of the package (a second checkout, a wheel) loads that build as it is: the library
    # depends on the source, the compiler and the CPU only, not on where dsmexp or torch are installed
    shutil.copytree(Path(fused.__file__).parents[2], tmp_path / "elsewhere" / "dsmexp",
                    ignore=shutil.ignore_patterns("__pycache__", "conf"))
    before = built[0].stat().st_mtime_ns
    other = subprocess.run([sys.executable, "-c", BUILD_SCRIPT], text=True, capture_output=True, timeout=600,
                           env=env | {"PYTHONPATH": str(tmp_path / "elsewhere")}, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert other.stdout.splitlines()[0].startswith(str(tmp_path / "elsewhere"))
    assert other.stdout.splitlines()[1] == outs[0][0].splitlines()[1]
    assert _compiles(other.stderr) == 0 and built[0].stat().st_mtime_ns == before  # not rebuilt


@needs_kernel
@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_build_killed_midway_leaves_nothing_that_stops_the_next(tmp_path, signal_name):
    env = os.environ | {fused_build.CACHE_ENV: str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT], env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line = first.stderr.readline()  # blocks until the compile has started (or the process ended)
    assert line.startswith("compiling the fused CPU kernel"), line
    time.sleep(1.0)
    first.send_signal(getattr(signal, signal_name))
    first.wait(timeout=60)
    first.stderr.close()
    cache = tmp_path / "cache"
    assert not list(cache.glob("*.so"))  # nothing half-written under the library's name
    start = time.monotonic()
    second = subprocess.run([sys.executable, "-c", BUILD_SCRIPT], env=env, text=True, capture_output=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    assert _compiles(second.stderr) == 1 and "waiting" not in second.stderr
    assert "compiled the fused CPU kernel in" in second.stderr
    assert len(list(cache.glob("*.so"))) == 1 and not list(cache.glob("*.tmp"))
    assert time.monotonic() - start < 590


def test_a_wait_for_another_builder_is_reported_and_bounded(tmp_path, monkeypatch, capsys):
    """A process holding the build lock (another build) is waited for, said so, and given up on after
    LOCK_WAIT_S with one line naming it; kernel=auto then runs on the torch path."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(fused_build.CACHE_ENV, str(cache))
    monkeypatch.setenv("CXX", "c++")
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    lock = fused_build.library_path("c++").with_suffix(".lock")
    cache.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('held', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(safe_io, "NOTICE_AFTER_S", 0.3)
        monkeypatch.setattr(fused_build, "LOCK_WAIT_S", 1.5)
        monkeypatch.setattr(fused_build, "_loaded", None)
        monkeypatch.setattr(logging.getLogger(), "handlers", [])  # notices go to stderr
        start = time.monotonic()
        gave_up = rf"^gave up after 2 s waiting for process {holder.pid}, which is compiling the fused CPU"
        with pytest.raises(fused_build.BuildError, match=gave_up + " kernel into .*; use kernel=torch$"):
            fused_build.load()
        assert time.monotonic() - start < 10
        err = capsys.readouterr().err
        assert f"waiting for process {holder.pid}, which is compiling the fused CPU kernel" in err
        assert fused.choose(make_cfg("kernel=auto"))[0] == "torch"  # the failure is remembered
    finally:
        holder.kill()
        holder.wait()


def test_a_kernel_cache_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file\n")
    monkeypatch.setenv(fused_build.CACHE_ENV, str(not_a_dir))
    for kernel in ("auto", "fused"):
        with pytest.raises(ConfigError, match=rf"^DSMEXP_KERNEL_CACHE={not_a_dir}: is not a directory"):
            preflight(make_cfg(f"kernel={kernel}"))
    preflight(make_cfg("kernel=torch"))  # never needs the cache
    monkeypatch.setenv(fused_build.CACHE_ENV, str(not_a_dir / "sub"))
    with pytest.raises(ConfigError, match="lies under .*cache, which is not a directory"):
        preflight(make_cfg("kernel=auto"))
    assert not_a_dir.read_text() == "a file\n"
