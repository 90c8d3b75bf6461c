"""`python -m dsmexp.sample` end to end: the toy of Song & Ermon (2019, Sec. 3.2.2) on the exact score
(plain Langevin gets the mode weights wrong, annealed Langevin gets them right), a trained
noise-conditional run sampled by every sampler into its own samples/ directory (the run's files
untouched, a second call keeping the first's files), and bad input as one line before any sampling."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.timeout(300)
TOY = ["experiment=ncsn_toy", "steps=40", "noise_samples=2", "eval_every=20", "diagnostics_every=10"]


def sample(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m dsmexp.sample ARGS` in this process (its interpreter start-up is all a subprocess would
    add; the sweep's runs are trained by real subprocesses): exit status and stderr."""
    from dsmexp import sample as command

    err, here = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err):
            code = command.main(list(args))
    finally:
        os.chdir(here)
    proc = subprocess.CompletedProcess(["dsmexp.sample", *args], code, "", err.getvalue())
    if check and code != 0:
        raise AssertionError(f"dsmexp.sample {' '.join(args)} exited {code}:\n{proc.stderr[-3000:]}")
    return proc


def quality(run_dir: Path, prefix: str) -> dict:
    (path,) = (run_dir / "samples").glob(f"{prefix}-*/quality.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    run_cli(*TOY, "hydra.run.dir=outputs/toy", cwd=root)
    run_cli("+profile=smoke", "hydra.run.dir=outputs/single", cwd=root)
    return root


def test_annealed_langevin_recovers_the_mode_weights_plain_langevin_does_not(toy):
    """Song & Ermon's Figure 3 on the exact score: 0.8 / 0.2 for annealed Langevin (10 levels from 20 to
    1, 100 steps each, eps = 0.1), about half and half for plain Langevin (step 0.1, 1000 steps), both
    from 1280 points uniform in [-8, 8]^2."""
    run = toy / "outputs" / "toy"
    for name in ("langevin", "annealed_langevin"):
        sample(f"run={run}", f"sampler={name}", "score=exact", "n=1280", "seeds=2", cwd=toy)
    annealed, plain = quality(run, "annealed_langevin-exact"), quality(run, "langevin-exact")
    assert annealed["sigmas"][0] == pytest.approx(20.0) and annealed["sigmas"][-1] == pytest.approx(1.0)
    assert abs(annealed["mean"]["weight_0"] - 0.8) < 0.04
    assert abs(plain["mean"]["weight_0"] - 0.5) < 0.1 and plain["mean"]["weight_error"] > 0.2
    assert annealed["mean"]["mmd2_h1"] < plain["mean"]["mmd2_h1"]
    assert annealed["se"]["weight_0"] >= 0 and len(annealed["per_seed"]) == 2
    # the control of the ODE likelihood: with the exact score and its exact divergence only the solver's
    # error is left between the ODE's log q_1 and the exact one (the networks' gaps are 0.4 to 0.9 nats)
    like = annealed["likelihood"]
    assert like["points"] == 500 and abs(like["gap"]) < 1e-3, like


def test_every_sampler_samples_a_trained_run_beside_its_files(toy):
    run = toy / "outputs" / "toy"
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    for name in ("langevin", "annealed_langevin", "reverse_sde", "pf_ode", "pc"):
        proc = sample(f"run={run}", f"sampler={name}", "n=200", "seeds=2", "sampler.steps=50",
                      "sampler.steps_per_level=5", cwd=toy)
        assert "score calls" in proc.stderr
        got = quality(run, f"{name}-model")
        assert got["n"] == 200 and got["score"] == "model" and len(got["seconds"]) == 2
        (npz,) = (run / "samples").glob(f"{name}-model-*/samples.npz")
        with np.load(npz) as f:
            assert f["samples"].shape == (2, 200, 2) and f["data"].shape == (2000, 2)
        assert np.isfinite(got["mean"]["w2"]) and got["mean"]["modes_covered"] >= 1
        like = got["likelihood"]  # the ODE log-likelihood against the exact log density, at sigma_min
        assert like["points"] == 500 and np.isfinite(like["pf_ode_loglik"]) and like["sigma_min"] == 1.0
        assert like["gap"] == pytest.approx(like["exact_loglik"] - like["pf_ode_loglik"])
    assert before == {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    again = sample(f"run={run}", "sampler=pc", "n=200", "seeds=2", "sampler.steps=50",
                   "sampler.steps_per_level=5", cwd=toy)
    assert "already sampled with these settings" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["sampler=nope"], "sampler=nope: must be one of langevin, annealed_langevin"),
    (["sampler.step_size=-1"], "sampler.step_size=-1"),
    (["+sampler.stepsize=1"], "sampler.stepsize: not a setting of the sample command; did you mean "
                              "sampler.step_size?"),
    (["score=exakt"], "score=exakt: must be one of model, exact"),
    (["n=1"], "n=1: must be >= 2"),
    (["RUN=single", "sampler=annealed_langevin"], "needs a noise-conditional run"),
    (["RUN=missing"], "not a dsmexp run directory"),
    ([], None),
])
def test_bad_input_is_one_line_before_any_sampling(toy, args, message):
    run = toy / "outputs" / "toy"
    named = [a.replace("RUN=single", f"run={toy / 'outputs' / 'single'}")
             .replace("RUN=missing", f"run={toy / 'nowhere'}") for a in args]
    if not any(a.startswith("run=") for a in named) and args:
        named.append(f"run={run}")
    proc = sample(*named, cwd=toy, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("dsmexp.sample: error: ")
    assert (message or "run: missing") in lines[0]
    assert not list(toy.glob("outputs/single/samples"))
