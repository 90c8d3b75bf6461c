"""Runs of the sliced and finite-difference objectives end to end in-process, and their settings' checks."""

import json
from pathlib import Path

import numpy as np
import pytest

from dsmexp.config import validate
from dsmexp.errors import ConfigError
from dsmexp.records import metrics_file
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg, run_cli

EST_COLUMNS = ("norm_est", "fit_est", "fit_est_se", "loss_est", "grad_norm_est", "grad_cos_est")


def train(tmp_path, *overrides, name="run"):
    cfg = make_cfg(*TINY, *overrides)
    run_dir = tmp_path / name
    assert trainer.run(cfg, run_dir) == "completed"
    return metrics_file.read_metrics(run_dir / "metrics.csv")


@pytest.mark.parametrize("loss", ["ssm", "ssm_vr", "fd_ssm"])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_estimator_trains_and_logs_its_terms_beside_the_exact_ones(tmp_path, loss, sigma):
    m = train(tmp_path, f"loss={loss}", f"sigma={sigma}", "projections=2")
    np.testing.assert_array_equal(m["loss"], m["loss_est"])
    np.testing.assert_allclose(m["loss_est"], m["norm_est"] + m["fit_est"], rtol=1e-12)
    for name in ("fit_ism", "grad_norm_ism", *EST_COLUMNS):
        assert np.all(np.isfinite(m[name])), name
    assert np.all(m["fit_est_se"] > 0) and np.all(np.abs(m["grad_cos_est"]) <= 1 + 1e-12)
    assert np.all(m["grad_cos_est"] > 0.3)  # one projection per point still points the ISM way
    # the estimator's fitting term is the exact trace up to a few standard errors
    assert np.all(np.abs(m["fit_est"] - m["fit_ism"]) < 5 * m["fit_est_se"] + 0.05 * np.abs(m["fit_ism"]))
    assert np.all(np.isfinite(m["fit_dsm"])) == (sigma > 0)
    if loss == "ssm_vr":  # the same norm term as ISM on the same z
        np.testing.assert_allclose(m["norm_est"], m["norm"], rtol=1e-5)


def test_exact_objectives_leave_the_estimator_columns_nan(tmp_path):
    m = train(tmp_path, "loss=ism", "sigma=0")
    for name in EST_COLUMNS:
        assert np.all(np.isnan(m[name])), name


@pytest.mark.parametrize("loss", ["ism", "dsm_s", "ssm_vr"])
def test_diagnostics_every_zero_computes_the_trained_objective_only(tmp_path, loss):
    lean = train(tmp_path, f"loss={loss}", "sigma=0.05", "diagnostics_every=0", name="lean")
    full = train(tmp_path, f"loss={loss}", "sigma=0.05", name="full")
    trained = {"ism": ("loss", "norm", "fit_ism", "loss_ism", "fit_ism_se", "grad_norm_ism"),
               "dsm_s": ("loss", "norm", "fit_dsm", "loss_dsm_s", "loss_dsm", "const_dsm", "fit_dsm_se",
                         "grad_norm_dsm"),
               "ssm_vr": ("loss", *EST_COLUMNS[:-1])}[loss]
    for name in metrics_file.COLUMNS[1:-4]:  # every step-term column
        assert np.all(np.isfinite(lean[name])) == (name in trained), name
    # the trained objective follows the same trajectory: same noise, same projections, same gradient
    np.testing.assert_allclose(lean["loss"], full["loss"], rtol=1e-5)


def test_projection_kinds_and_fd_eps_change_the_run(tmp_path):
    base = train(tmp_path, "loss=fd_ssm", "sigma=0", name="a")
    other = train(tmp_path, "loss=fd_ssm", "sigma=0", "fd_eps=0.01", name="b")
    gauss = train(tmp_path, "loss=fd_ssm", "sigma=0", "projection=gaussian", name="c")
    sphere = train(tmp_path, "loss=ssm", "sigma=0", "projection=sphere", name="d")
    assert not np.array_equal(base["fit_est"], other["fit_est"])
    assert not np.array_equal(base["fit_est"], gauss["fit_est"])
    np.testing.assert_array_equal(base["fit_ism"][:1], other["fit_ism"][:1])  # same network at step 0
    assert np.all(np.isfinite(sphere["loss"]))


@pytest.mark.parametrize("override, message", [
    ("projections=0", "projections=0: must be >= 1 (projection vectors per point)"),
    ("fd_eps=0", "fd_eps=0.0: must be > 0 (radius of the finite-difference step)"),
    ("fd_eps=-0.1", "fd_eps=-0.1: must be > 0 (radius of the finite-difference step)"),
    ("projection=cauchy", "projection=cauchy: must be one of rademacher, gaussian, sphere"),
    ("diagnostics_every=-1", "diagnostics_every=-1: must be >= 0 (0: the trained objective only)"),
])
def test_bad_estimator_settings_get_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("loss=ssm", override))
    assert str(err.value) == message


@pytest.mark.parametrize("overrides, low, high", [
    (["fd_eps=1e30"], "0.00106", "3.08"), (["fd_eps=1e-30"], "0.00106", "3.08"),
    (["fd_eps=1e-6"], "0.00106", "3.08"), (["fd_eps=1e-30", "dtype=float64"], "4.59e-08", "3.08"),
    (["fd_eps=60", "dataset.dim=512"], "0.017", "49.3"),
])
def test_fd_eps_outside_the_meaningful_range_is_refused(overrides, low, high):
    """sqrt(eps of the dtype) R <= fd_eps <= R, R = sqrt(d) x (half-moon extent 2 + 3 noise + 3 sigma)."""
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("loss=fd_ssm", *overrides))
    value = overrides[0].split("=")[1]
    assert str(err.value).startswith(f"fd_eps={float(value)}: must be between {low} and {high} here: "
                                     "sqrt(eps of float")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", [["fd_eps=1e-6", "dtype=float64"], ["fd_eps=3"], ["fd_eps=0.002"],
                                       ["fd_eps=0.05", "dataset.dim=512"], ["loss=ssm", "fd_eps=1e30"]])
def test_fd_eps_inside_the_range_or_unused_passes(overrides):
    validate(make_cfg("loss=fd_ssm", *overrides))


@pytest.mark.slow
def test_command_line_trains_each_estimator_and_a_custom_module(tmp_path):
    root = Path(__file__).resolve().parents[2]
    run_cli("-m", *TINY, "loss=ssm,ssm_vr,fd_ssm", "sigma=0", "hydra.sweep.dir=outputs/est", cwd=tmp_path)
    for loss in ("ssm", "ssm_vr", "fd_ssm"):
        (run_dir,) = (tmp_path / "outputs" / "est").glob(f"*,loss={loss},*")  # named by the overrides
        m = metrics_file.read_metrics(run_dir / "metrics.csv")
        np.testing.assert_array_equal(m["loss"], m["loss_est"])
    run_cli(*TINY, "model=custom", "model.target=tests.user_modules.ResidualMLP", "loss=ssm_vr",
            "hydra.run.dir=outputs/custom", cwd=tmp_path, env={"PYTHONPATH": str(root)})
    assert json.loads((tmp_path / "outputs" / "custom" / "summary.json").read_text())["status"] == "completed"
