"""Runs that cannot fit in memory are refused up front in one line naming the key (nothing allocated)."""

import logging

import pytest

from dsmexp.train import memory
from dsmexp.train.preflight import preflight
from tests.conftest import make_cfg, run_cli_in_process

GIB = 1 << 30


@pytest.fixture
def sixteen_gib(monkeypatch):
    """A machine (and GPU) with 16 GiB free, whatever this one has."""
    monkeypatch.setattr(memory, "available_memory", lambda: (16 * GIB, "MemAvailable"))
    monkeypatch.setattr(memory, "device_memory", lambda: (16 * GIB, "free on the CUDA device"))


@pytest.mark.parametrize("overrides, key", [
    (["noise_samples=1000000000"], "noise_samples=1000000000"),
    (["eval_samples=1000000000"], "eval_samples=1000000000"),
    (["dataset.n_samples=1000000000"], "dataset.n_samples=1000000000"),
    (["loss=ssm", "projections=1000000000"], "projections=1000000000"),
    (["model.hidden=[100000,100000]"], "model.hidden=[100000, 100000]"),
    (["dataset.dim=1000000"], "dataset.dim=1000000"),
    (["dataset=gaussian", "dataset.dim=100000"], "dataset.dim=100000"),
])
def test_a_run_too_large_for_memory_is_refused_naming_the_key(overrides, key, sixteen_gib, tmp_path,
                                                              monkeypatch):
    code, err = run_cli_in_process(*overrides, "kernel=torch", cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 1
    assert err.startswith(f"dsmexp: error: {key}: the run needs about ") and err.count("\n") == 1, err
    assert "more than the 16.0 GiB available (MemAvailable)" in err or "GPU memory" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_the_estimate_grows_with_what_the_run_holds():
    base = sum(g.nbytes for g in memory.estimate(make_cfg()))
    # sigma = 0 draws no noise, so M does not count; ISM draws no projections, so K does not either
    assert sum(g.nbytes for g in memory.estimate(make_cfg("loss=ism", "sigma=0", "noise_samples=1000000000",
                                                          "projections=1000000000"))) < base
    noise = {g.what: g.nbytes for g in memory.estimate(make_cfg("noise_samples=1000"))}
    assert noise["the noise and noised points (2 x M x N x d)"] == 2 * 1000 * 1000 * 2 * 4
    doubled = {g.what: g.nbytes for g in memory.estimate(make_cfg("noise_samples=1000", "dtype=float64"))}
    assert doubled["the noise and noised points (2 x M x N x d)"] == 2 * noise[
        "the noise and noised points (2 x M x N x d)"]


def test_default_and_paper_runs_pass_without_a_warning(caplog):
    """The real machine's memory: an ordinary run is far below half of it."""
    assert memory.available_memory()[0] > 0
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.memory"):
        preflight(make_cfg())
        preflight(make_cfg("experiment=paper"))
        preflight(make_cfg("experiment=dimension_dsm_s", "+profile=paper", "dataset.dim=512"))
    assert caplog.records == []


def test_a_run_near_the_limit_is_warned_about_once(monkeypatch, caplog):
    cfg = make_cfg("noise_samples=100000", "kernel=torch", "device=cpu")
    need = sum(g.nbytes for g in memory.estimate(cfg))
    monkeypatch.setattr(memory, "available_memory", lambda: (int(1.5 * need), "MemAvailable"))
    monkeypatch.setattr(memory, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="dsmexp.train.memory"):
        preflight(cfg)
        preflight(cfg)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("noise_samples=100000: the run needs about ")
