"""A run end to end in-process: the files it leaves, their exact format, and reproducibility."""

import json
import math

import numpy as np
import pytest
import torch

from dsmexp.core.networks import ScoreMLP
from dsmexp.core.objectives.terms import METRICS
from dsmexp.records import metrics_file
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg


def train(tmp_path, *overrides, name="run"):
    cfg = make_cfg(*TINY, *overrides)
    run_dir = tmp_path / name
    status = trainer.run(cfg, run_dir)
    return status, run_dir, cfg


def test_run_leaves_every_contract_file(tmp_path):
    status, run_dir, cfg = train(tmp_path)
    assert status == "completed"
    m = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert list(m) == ["step", "loss", "norm", "fit_ism", "fit_dsm", "const_dsm", "loss_ism", "loss_dsm_s",
                       "loss_dsm", "fit_ism_se", "fit_dsm_se", "grad_norm_ism", "grad_norm_dsm", "grad_cos",
                       "norm_est", "fit_est", "fit_est_se", "loss_est", "grad_norm_est", "grad_cos_est",
                       "fit_vr", "fit_vr_se", "loss_vr", "grad_norm_vr", "grad_var", "grad_var_se",
                       "grad_var_ism", "grad_var_ism_se", "esm", "esm_data", "esm_emp", "esm_rel",
                       "esm_data_rel", "curl", "loglik", "kl", "time_s"]
    assert m["step"].tolist() == list(range(cfg.steps))
    assert np.all(np.diff(m["time_s"]) > 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == cfg.steps
    assert summary["final"]["loss"] == pytest.approx(m["loss"][-1])
    assert summary["seed"] == 0 and summary["versions"]["torch"] == torch.__version__
    assert summary["device"].startswith("cpu")
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert {"model", "optimizer", "noise", "steps_done"} <= set(state)


def test_score_field_is_in_meshgrid_xy_order(tmp_path):
    _, run_dir, cfg = train(tmp_path, "grid_size=9")
    field = np.load(run_dir / "score_field.npz")
    gx, gy, score, data = field["grid_x"], field["grid_y"], field["score"], field["data"]
    assert score.shape == (len(gy), len(gx), 2) == (9, 9, 2)
    assert data.shape == (cfg.dataset.n_samples, 2)
    assert gx.min() < data[:, 0].min() and gx.max() > data[:, 0].max()
    assert gy.min() < data[:, 1].min() and gy.max() > data[:, 1].max()
    model = ScoreMLP(2, cfg.model.hidden, cfg.model.activation)
    model.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"])
    i, j = 2, 7
    point = torch.tensor([[gx[j], gy[i]]], dtype=torch.float32)
    np.testing.assert_allclose(score[i, j], model(point).detach().numpy()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["dsm", "ism"])
def test_identities_hold_on_every_row(tmp_path, loss):
    _, run_dir, _ = train(tmp_path, f"loss={loss}", "sigma=0.05")
    m = metrics_file.read_metrics(run_dir / "metrics.csv")
    np.testing.assert_allclose(m["loss_dsm"] - m["loss_dsm_s"], m["const_dsm"], rtol=1e-9)
    np.testing.assert_allclose(m["loss_ism"], m["norm"] + m["fit_ism"], rtol=1e-12)
    np.testing.assert_array_equal(m["loss"], m[{"dsm": "loss_dsm", "ism": "loss_ism"}[loss]])
    assert np.all(np.isfinite(m["grad_cos"])) and np.all(np.abs(m["grad_cos"]) <= 1 + 1e-12)


def test_same_command_twice_gives_identical_metrics(tmp_path):
    _, a, _ = train(tmp_path, "seed=3", name="a")
    _, b, _ = train(tmp_path, "seed=3", name="b")
    _, c, _ = train(tmp_path, "seed=4", name="c")
    ma, mb, mc = (metrics_file.read_metrics(d / "metrics.csv") for d in (a, b, c))
    for name in METRICS:
        np.testing.assert_array_equal(ma[name], mb[name])
    assert not np.array_equal(ma["loss"], mc["loss"])


def test_dsm_and_dsm_s_follow_the_same_trajectory(tmp_path):
    _, a, _ = train(tmp_path, "loss=dsm", name="dsm")
    _, b, _ = train(tmp_path, "loss=dsm_s", name="dsm_s")
    ma, mb = metrics_file.read_metrics(a / "metrics.csv"), metrics_file.read_metrics(b / "metrics.csv")
    for name in METRICS:
        if name != "loss":
            np.testing.assert_array_equal(ma[name], mb[name])
    np.testing.assert_allclose(ma["loss"] - mb["loss"], ma["const_dsm"], rtol=1e-9)


@pytest.mark.parametrize("overrides", [
    ["dataset=swiss_roll", "loss=dsm_s"],
    ["dataset=gaussian", "dataset.dim=3", "dataset.mean=[1,0,-1]", "loss=ism"],
    ["optimizer=adam", "optimizer.lr=3e-4"],
    ["optimizer=sgd", "optimizer.momentum=0.9"],
    ["model.hidden=[64,64]", "model.activation=silu"],
    ["model.hidden=[8]", "model.activation=softplus"],
    ["loss=ism", "sigma=0"],
    ["dtype=float64", "device=cpu", "diagnostics_every=2"],
])
def test_settings_run_end_to_end(tmp_path, overrides):
    status, run_dir, cfg = train(tmp_path, *overrides)
    assert status == "completed"
    m = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert np.all(np.isfinite(m["loss"]))
    assert (run_dir / "score_field.npz").exists() == (cfg.dataset.name != "gaussian" or cfg.dataset.dim == 2)
    if cfg.diagnostics_every == 2:
        assert math.isnan(m["grad_cos"][1]) and math.isfinite(m["grad_cos"][0])


@pytest.mark.parametrize("overrides", [["dataset=checkerboard", "loss=ism", "sigma=0.05"],
                                       ["dataset=square", "loss=dsm_s", "sigma=0.01"]])
def test_data_with_edges_train_above_sigma_zero(tmp_path, overrides):
    """Uniform cells: at sigma > 0 both objectives run with the exact q_sigma score (esm finite, Prop. 2's
    fitting terms within 4 standard errors at every step); the clean score does not exist (esm_data NaN)."""
    status, run_dir, _ = train(tmp_path, *overrides)
    assert status == "completed"
    m = metrics_file.read_metrics(run_dir / "metrics.csv")
    evaluated = np.isfinite(m["esm"])
    assert evaluated.any() and np.isnan(m["esm_data"]).all()
    gap = np.abs(m["fit_ism"] - m["fit_dsm"])
    assert (gap <= 4 * np.hypot(m["fit_ism_se"], m["fit_dsm_se"])).all()
    assert (run_dir / "score_field.npz").exists()


def test_an_energy_run_logs_a_conservative_field_and_its_likelihood(tmp_path):
    """model.parametrization=energy trains on the torch path; at eval steps its curl is rounding, its grid
    log-likelihood and KL to q_sigma are finite (KL >= 0 up to the grid); a free-form score run has a
    curl and no likelihood."""
    status, run_dir, _ = train(tmp_path, "model.parametrization=energy", "loss=dsm_s", name="energy")
    assert status == "completed"
    energy = metrics_file.read_metrics(run_dir / "metrics.csv")
    evaluated = np.isfinite(energy["esm"])
    assert (energy["curl"][evaluated] < 1e-5).all()
    assert np.isfinite(energy["loglik"][evaluated]).all() and (energy["kl"][evaluated] > -1e-3).all()
    assert json.loads((run_dir / "summary.json").read_text())["kernel"] == "torch"
    _, score_dir, _ = train(tmp_path, "loss=dsm_s", name="score")
    score = metrics_file.read_metrics(score_dir / "metrics.csv")
    assert (score["curl"][evaluated] > 1e-3).all() and np.isnan(score["loglik"]).all()
