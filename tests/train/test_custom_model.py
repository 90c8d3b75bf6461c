"""model=custom: any nn.Module trained with every objective; exact divergence and gradients by torch.func."""

import numpy as np
import pytest
import torch

from dsmexp.core.kernels.module import ModuleKernel
from dsmexp.core.kernels.select import make_kernel
from dsmexp.errors import ConfigError
from dsmexp.records import metrics_file
from dsmexp.train import trainer
from dsmexp.train.preflight import preflight
from tests.conftest import TINY, make_cfg, run_cli_in_process
from tests.core.test_divergence import brute_force_divergence, brute_force_grads
from tests.user_modules import ResidualMLP

TARGET = "tests.user_modules.ResidualMLP"


def residual(dim: int, seed: int = 0) -> ResidualMLP:
    torch.manual_seed(seed)
    return ResidualMLP(dim, width=12, blocks=2).double()


@pytest.mark.parametrize("dim", [2, 7])
def test_module_kernel_divergence_and_gradients_match_autograd(dim, monkeypatch):
    model = residual(dim)
    kernel = make_kernel(model)
    assert isinstance(kernel, ModuleKernel)
    monkeypatch.setattr("dsmexp.core.kernels.module.TANGENT_VALUES", 3 * 50 * dim)  # 3 basis vectors a group
    z = 1.5 * torch.randn(50, dim, dtype=torch.float64)
    c = torch.randn(50, dim, dtype=torch.float64)
    fwd = kernel.forward(z.T.contiguous())
    torch.testing.assert_close(fwd.div.detach(), brute_force_divergence(model, z), rtol=1e-12, atol=1e-12)
    s = fwd.s.detach()
    grads = kernel.backward(fwd, torch.stack([s + c.T]), div_row=0)
    for got, want in zip(grads, brute_force_grads(model, z, c)):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-10)


def test_module_kernel_directional_derivatives_match_the_jacobian():
    model = residual(4)
    z = torch.randn(30, 4, dtype=torch.float64)
    v = torch.randn(3, 4, 30, dtype=torch.float64)
    s, jv = ModuleKernel(model).directional(z.T.contiguous(), v)
    jac = torch.func.vmap(torch.func.jacrev(model))(z)  # (n, d, d)
    torch.testing.assert_close(jv.detach(), torch.einsum("nij,kjn->kin", jac, v), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.detach(), model(z).detach().T)


@pytest.mark.parametrize("loss, sigma", [("ism", 0.0), ("dsm_s", 0.05), ("ssm", 0.0), ("ssm_vr", 0.05),
                                         ("fd_ssm", 0.0)])
def test_a_user_module_trains_with_every_objective(tmp_path, loss, sigma):
    cfg = make_cfg(*TINY, "steps=20", "model=custom", f"model.target={TARGET}", "+model.kwargs.width=8",
                   f"loss={loss}", f"sigma={sigma}", "optimizer.lr=0.01", "eval_every=0")
    run_dir = tmp_path / "run"
    assert trainer.run(cfg, run_dir) == "completed"
    m = metrics_file.read_metrics(run_dir / "metrics.csv")
    assert np.all(np.isfinite(m["loss"])) and np.all(np.isfinite(m["fit_ism"]))
    assert m["loss"][-5:].mean() < m["loss"][:5].mean()  # it learns
    assert np.isfinite(m["esm_data"][-1])
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    assert state["inp.weight"].shape == (8, 2)  # kwargs reached the constructor, dim was filled in


@pytest.mark.parametrize("target, message", [
    ("no_such_pkg.Net", "model.target=no_such_pkg.Net: cannot be imported (No module named 'no_such_pkg')"),
    ("tests.user_modules.Missing", "model.target=tests.user_modules.Missing: cannot be imported"),
    ("tests.user_modules.NotAModule",
     "model.target=tests.user_modules.NotAModule: is not a torch nn.Module class"),
    ("tests.user_modules.WrongShape", "model.target=tests.user_modules.WrongShape: returns (3, 1) for (3, 2) "
                                      "points; a score model must map (n, d) points to (n, d) scores"),
    ("ResidualMLP", "model.target=ResidualMLP: must be a dotted path package.module.Class"),
])
def test_bad_custom_model_gets_one_line(target, message):
    with pytest.raises(ConfigError) as err:
        preflight(make_cfg("model=custom", f"model.target={target}"))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("target, message", [
    ("torch.nn.Identity", "model.target=torch.nn.Identity: has no trainable parameters"),
    ("tests.user_modules.BatchNormed", "model.target=tests.user_modules.BatchNormed: the score of a point "
                                       "changes with the other points it is called with (its first 3 of 9"),
    ("tests.user_modules.PairsOnly", "model.target=tests.user_modules.PairsOnly: calling it on (3, 2) points "
                                     "failed (RuntimeError: shape '[-1, 4]' is invalid"),
    ("tests.user_modules.SqueezesOnePoint", "model.target=tests.user_modules.SqueezesOnePoint: returns (2,) "
                                            "for (1, 2) points"),
])
def test_a_custom_model_that_cannot_train_in_chunks_is_refused(target, message, tmp_path, monkeypatch):
    code, err = run_cli_in_process("model=custom", f"model.target={target}", "kernel=torch", cwd=tmp_path,
                                   monkeypatch=monkeypatch)
    assert code == 1 and err.startswith(f"dsmexp: error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_custom_model_needs_a_target_and_valid_kwargs():
    with pytest.raises(ConfigError, match=r"^model.target: missing"):
        preflight(make_cfg("model=custom"))
    with pytest.raises(ConfigError, match=r"^model.target=tests.user_modules.ResidualMLP: building it with "):
        preflight(make_cfg("model=custom", f"model.target={TARGET}", "+model.kwargs.depth=3"))
