"""The per-step terms: Prop. 2, the DSM = DSM-S + const identity, gradients at a known optimum."""

import math

import numpy as np
import pytest
import torch

from dsmexp.core.datasets import HalfMoon
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS, Moments


def metric(terms, name: str) -> float:
    return float(terms.metrics[METRICS.index(name)])


def random_net(seed: int = 0, dtype=torch.float32, hidden=(16, 32)) -> ScoreMLP:
    torch.manual_seed(seed)
    model = ScoreMLP(2, list(hidden), "tanh").to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return model


def half_moon(n: int, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(HalfMoon(n, 0.05).sample(n, seed=3), dtype=dtype)


@pytest.mark.parametrize("sigma", [1e-1, 1e-2, 1e-3])
def test_prop2_fitting_terms_agree_in_expectation(sigma):
    """Eq. 10: E div s(z) = E <s(z), eps>/sigma, within 4 combined standard errors."""
    model = random_net()
    x = half_moon(1000)
    eps = torch.randn(1000, 1000, 2, generator=torch.Generator().manual_seed(1))
    terms = step_terms(make_kernel(model), x, eps, sigma, "ism")
    fit_ism, fit_dsm = metric(terms, "fit_ism"), metric(terms, "fit_dsm")
    se = math.hypot(metric(terms, "fit_ism_se"), metric(terms, "fit_dsm_se"))
    assert abs(fit_ism) > 0.1  # a network whose divergence is far from 0, so agreement means something
    assert abs(fit_ism - fit_dsm) < 4 * se, (fit_ism, fit_dsm, se)


def test_fit_dsm_standard_error_grows_like_one_over_sigma():
    """The paper's variance argument: sd(<s, eps>/sigma) ~ |s| / sigma while sd(div s) stays put."""
    model, x = random_net(), half_moon(500)
    eps = torch.randn(50, 500, 2, generator=torch.Generator().manual_seed(2))
    se = {s: step_terms(make_kernel(model), x, eps, s, "ism") for s in (1e-2, 1e-3)}
    ratio = metric(se[1e-3], "fit_dsm_se") / metric(se[1e-2], "fit_dsm_se")
    assert 8 < ratio < 12
    assert metric(se[1e-3], "fit_ism_se") == pytest.approx(metric(se[1e-2], "fit_ism_se"), rel=0.05)


def test_loss_identities_hold_on_one_step():
    model, x = random_net(), half_moon(300)
    eps = torch.randn(20, 300, 2)
    terms = step_terms(make_kernel(model), x, eps, 0.05, "dsm")
    v = dict(zip(METRICS, terms.metrics.tolist()))
    assert v["loss_dsm"] - v["loss_dsm_s"] == pytest.approx(v["const_dsm"], rel=1e-12)
    assert v["loss_ism"] == v["norm"] + v["fit_ism"]
    assert v["loss"] == v["loss_dsm"]
    e = eps.double()
    assert v["const_dsm"] == pytest.approx(float((e * e).sum(-1).mean() / (2 * 0.05**2)), rel=1e-12)


def test_dsm_and_dsm_s_share_their_gradient():
    model, x = random_net(), half_moon(300)
    eps = torch.randn(20, 300, 2)
    kernel = make_kernel(model)
    dsm, dsm_s = step_terms(kernel, x, eps, 0.05, "dsm"), step_terms(kernel, x, eps, 0.05, "dsm_s")
    for a, b in zip(dsm.grad, dsm_s.grad):
        assert torch.equal(a, b)
    assert metric(dsm, "loss") - metric(dsm_s, "loss") == pytest.approx(metric(dsm, "const_dsm"))


def test_results_do_not_depend_on_chunking():
    model, x = random_net(dtype=torch.float64), half_moon(200, torch.float64)
    eps = torch.randn(10, 200, 2, dtype=torch.float64)
    kernel = make_kernel(model)
    whole = step_terms(kernel, x, eps, 0.1, "ism", chunk_size=10**6)
    # the gradient-variance columns are the one exception: their groups are the chunks' whole noise rows
    # (one group here: NaN; a row per group for any chunk below 400 points, so 7 and 333 agree)
    same = [k for k, name in enumerate(METRICS) if not name.startswith("grad_var")]
    rows = [METRICS.index(name) for name in ("grad_var", "grad_var_ism")]
    assert whole.metrics[rows].isnan().all()
    parts = [step_terms(kernel, x, eps, 0.1, "ism", chunk_size=chunk) for chunk in (7, 333)]
    for part in parts:
        torch.testing.assert_close(part.metrics[same], whole.metrics[same], rtol=1e-11, atol=1e-11,
                                   equal_nan=True)
        for a, b in zip(part.grad, whole.grad):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(parts[0].metrics[rows], parts[1].metrics[rows], rtol=1e-9, atol=0)
    assert (parts[0].metrics[rows] > 0).all()


def test_diagnostics_off_skips_only_the_second_gradient():
    model, x = random_net(), half_moon(200)
    eps = torch.randn(10, 200, 2)
    kernel = make_kernel(model)
    full = step_terms(kernel, x, eps, 0.1, "ism", diagnostics=True)
    lean = step_terms(kernel, x, eps, 0.1, "ism", diagnostics=False)
    for name in ("grad_norm_dsm", "grad_cos"):
        assert math.isnan(metric(lean, name)) and not math.isnan(metric(full, name))
    for name in ("loss", "fit_ism", "fit_dsm", "loss_dsm", "grad_norm_ism"):
        assert metric(lean, name) == pytest.approx(metric(full, name), rel=1e-6)
    for a, b in zip(lean.grad, full.grad):
        torch.testing.assert_close(a, b)


def test_clean_data_leaves_dsm_columns_nan():
    model, x = random_net(), half_moon(100)
    terms = step_terms(make_kernel(model), x, None, 0.0, "ism")
    for name in ("fit_dsm", "const_dsm", "loss_dsm", "loss_dsm_s", "fit_dsm_se", "grad_norm_dsm",
                 "grad_cos"):
        assert math.isnan(metric(terms, name))
    assert math.isfinite(metric(terms, "loss")) and math.isfinite(metric(terms, "grad_norm_ism"))


def linear_model(a: torch.Tensor, b: torch.Tensor) -> ScoreMLP:
    model = ScoreMLP(a.shape[0], [], "tanh").double()
    with torch.no_grad():
        model.layers[0].weight.copy_(a)
        model.layers[0].bias.copy_(b)
    return model


def flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def test_ism_gradient_vanishes_at_the_empirical_gaussian_optimum():
    """For s(z) = A z + b, ISM on a sample is minimised exactly by A = -Cov^-1, b = -A mean."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.multivariate_normal([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]], 500))
    cov = torch.cov(x.T, correction=0)
    a = -torch.linalg.inv(cov)
    terms = step_terms(make_kernel(linear_model(a, -a @ x.mean(0))), x, None, 0.0, "ism")
    assert flat(terms.grad).norm() < 1e-10
    assert metric(terms, "fit_ism_se") < 1e-12  # Gaussian case: the ISM fitting term has no variance


@pytest.mark.parametrize("loss", ["ism", "dsm"])
def test_gradients_vanish_at_the_gaussian_optimum_and_point_back_to_it(loss):
    """s*(z) = -(Sigma + sigma^2 I)^-1 (z - mu) is the optimum of both objectives on N(mu, Sigma)."""
    mu, cov, sigma = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]]), 0.3
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.multivariate_normal(mu.numpy(), cov.numpy(), 20000))
    eps = torch.randn(20, 20000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a_star = -torch.linalg.inv(cov.double() + sigma**2 * torch.eye(2, dtype=torch.float64))
    b_star = -a_star @ mu.double()
    shift = 0.3 * torch.tensor([[1.0, 0.2], [0.2, -0.5]], dtype=torch.float64)

    def grad_at(a: torch.Tensor) -> torch.Tensor:
        return flat(step_terms(make_kernel(linear_model(a, b_star)), x, eps, sigma, loss).grad)

    at_optimum, off_optimum = grad_at(a_star), grad_at(a_star + shift)
    assert at_optimum.norm() < 0.03 * off_optimum.norm()
    # a gradient step from A* + shift moves back toward A*: the A-gradient leans along the shift
    grad_a = off_optimum[:4]
    assert grad_a @ shift.reshape(-1) / (grad_a.norm() * shift.norm()) > 0.5


def test_moments_standard_error_is_accurate_for_large_means():
    values = torch.randn(100_000, dtype=torch.float64) * 1e-3 + 1e6
    m = Moments()
    for part in values.split(7_777):
        m.add(part.float())
    ref = values.float().double().numpy()
    assert float(m.mean()) == pytest.approx(ref.mean(), rel=1e-14)
    assert float(m.standard_error()) == pytest.approx(ref.std(ddof=1) / math.sqrt(ref.size), rel=1e-6)
