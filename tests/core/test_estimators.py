"""The sliced and finite-difference estimators against the exact trace, with real numbers:
unbiased fitting term and gradient, the projection variance of a linear model, fd_ssm's O(eps^2) bias."""

import math

import pytest
import torch

from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.objectives.estimators import draw_projections
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS


def metric(terms, name: str) -> float:
    return float(terms.metrics[METRICS.index(name)])


def random_net(dim: int, hidden: list[int], seed: int = 0) -> ScoreMLP:
    torch.manual_seed(seed)
    model = ScoreMLP(dim, hidden, "tanh").double()
    with torch.no_grad():  # larger weights than the default init: a Jacobian far from symmetric and from 0
        for p in model.parameters():
            p.mul_(2.0)
    return model


def flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def projections(kind: str, k: int, dim: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return draw_projections(kind, k, dim, n, gen, torch.device("cpu"), torch.float64)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sphere"])
def test_projections_have_identity_second_moment(kind):
    v = projections(kind, 1, 3, 200_000, seed=1)[0]  # (d, n)
    second = v @ v.T / v.shape[1]
    torch.testing.assert_close(second, torch.eye(3, dtype=torch.float64), atol=0.02, rtol=0)
    if kind == "sphere":
        radius = torch.full((v.shape[1],), math.sqrt(3), dtype=torch.float64)
        torch.testing.assert_close(v.norm(dim=0), radius)


@pytest.mark.parametrize("loss, kind", [("ssm", "rademacher"), ("ssm", "gaussian"), ("ssm_vr", "rademacher"),
                                        ("ssm_vr", "sphere"), ("fd_ssm", "gaussian")])
def test_fitting_term_is_unbiased_for_the_exact_trace(loss, kind):
    """mean over K projections per point of v^T J v (or its finite difference) = mean div s, within 4 SE
    of the per-value differences v^T J v - Tr J."""
    dim, n, k = 4, 400, 64
    model = random_net(dim, [16, 32])
    kernel = make_kernel(model)
    z = 1.5 * torch.randn(dim, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    div = kernel.forward(z).div.detach()
    part = objective(loss).terms(kernel, z, projections(kind, k, dim, n, seed=2), fd_eps=1e-3)
    diff = (part.fit - div).reshape(-1)
    se = diff.std() / math.sqrt(diff.numel())
    assert se < 0.02 * div.abs().mean()  # the test resolves a 2% error in the trace
    assert abs(float(diff.mean())) < 4 * se, (float(diff.mean()), float(se))


@pytest.mark.parametrize("loss", ["ssm", "ssm_vr", "fd_ssm"])
def test_gradient_is_unbiased_for_the_exact_ism_gradient(loss):
    """The estimator's parameter gradient, averaged over independent projection draws, equals the exact
    ISM gradient on the same points: every component within 4 standard errors over the draws (checked
    offline with 400 draws: the mean error keeps shrinking like 1 / sqrt(draws))."""
    dim, n, k, draws = 3, 300, 8, 40
    model = random_net(dim, [6])
    kernel = make_kernel(model)
    x = 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = flat(step_terms(kernel, x, None, 0.0, "ism").grad)
    samples = []
    for r in range(draws):
        v = projections("rademacher", k, dim, n, seed=100 + r)
        terms = step_terms(kernel, x, None, 0.0, loss, v=v, fd_eps=1e-3)
        g = flat(terms.grad)
        cos = float(g @ exact / (g.norm() * exact.norm()))
        assert metric(terms, "grad_cos_est") == pytest.approx(cos, rel=1e-12)
        assert metric(terms, "grad_norm_est") == pytest.approx(float(g.norm()), rel=1e-12)
        samples.append(g)
    samples = torch.stack(samples)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(draws)
    fixed = se < 1e-10  # ssm_vr's output-bias gradient (mean s) does not depend on the projections
    torch.testing.assert_close(mean[fixed], exact[fixed], rtol=1e-9, atol=1e-12)
    assert fixed.sum() == (dim if loss == "ssm_vr" else 0)
    # fd_ssm at fd_eps = 1e-3 keeps an O(fd_eps^2) bias, visible where the spread over draws is tiny
    allowed = 4 * se + (1e-5 * exact.norm() if loss == "fd_ssm" else 0.0)
    assert torch.all((mean - exact)[~fixed].abs() < allowed[~fixed]), ((mean - exact) / se)
    assert (mean - exact).norm() < 0.05 * exact.norm()  # the standard errors are small: the test has power


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_linear_model_projection_variance_matches_theory(kind):
    """s = W z + b: J = W everywhere and v^T W v = v^T A v with A = (W + W^T)/2, whose variance is
    2(|A|_F^2 - sum A_ii^2) for Rademacher and 2 |A|_F^2 for Gaussian projections."""
    dim, n, k = 4, 50_000, 4
    w = torch.tensor([[-1.0, 0.7, 0.0, 0.3], [-0.2, -2.0, 0.5, 0.0], [0.9, 0.4, -0.5, -0.6],
                      [0.1, 0.0, 1.2, -1.0]], dtype=torch.float64)
    model = ScoreMLP(dim, [], "tanh").double()
    with torch.no_grad():
        model.layers[0].weight.copy_(w)
        model.layers[0].bias.fill_(0.5)
    a = (w + w.T) / 2
    expected = 2 * (a.square().sum() - a.diagonal().square().sum()) if kind == "rademacher" else \
        2 * a.square().sum()
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    terms = step_terms(make_kernel(model), x, None, 0.0, "ssm_vr", v=projections(kind, k, dim, n, seed=4))
    measured = metric(terms, "fit_est_se") ** 2 * (n * k)  # per-value variance
    assert measured == pytest.approx(float(expected), rel=0.03)
    assert metric(terms, "fit_est") == pytest.approx(float(w.trace()), abs=4 * metric(terms, "fit_est_se"))
    assert metric(terms, "fit_ism_se") == 0.0  # the exact trace has no variance here


def test_fd_ssm_bias_shrinks_like_eps_squared():
    """With the same Rademacher projections, fd_ssm minus the exact sliced terms (ssm_vr) is its bias:
    halving fd_eps divides it by 4, for the fitting term and for the whole loss."""
    dim, n = 3, 2000
    model = random_net(dim, [16, 32], seed=1)
    kernel = make_kernel(model)
    x = 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v = projections("rademacher", 2, dim, n, seed=6)
    sliced = step_terms(kernel, x, None, 0.0, "ssm_vr", v=v)
    bias = {}
    for eps in (0.2, 0.1, 0.05):
        fd = step_terms(kernel, x, None, 0.0, "fd_ssm", v=v, fd_eps=eps)
        bias[eps] = {name: metric(fd, name) - metric(sliced, name) for name in ("fit_est", "loss_est")}
    for name in ("fit_est", "loss_est"):
        assert abs(bias[0.05][name]) > 1e-6  # a real bias, not rounding
        for big, small in ((0.2, 0.1), (0.1, 0.05)):
            assert bias[big][name] / bias[small][name] == pytest.approx(4.0, rel=0.12), (name, bias)


@pytest.mark.parametrize("loss", ["ssm", "fd_ssm"])
def test_estimator_terms_do_not_depend_on_chunking(loss):
    dim, n = 3, 200
    model = random_net(dim, [16, 32])
    kernel = make_kernel(model)
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    eps = torch.randn(5, n, dim, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    v = projections("gaussian", 3, dim, 5 * n, seed=9)
    whole = step_terms(kernel, x, eps, 0.1, loss, v=v, chunk_size=10**6)
    same = [k for k, name in enumerate(METRICS) if not name.startswith("grad_var")]  # groups: whole rows
    for chunk in (7, 333):
        part = step_terms(kernel, x, eps, 0.1, loss, v=v, chunk_size=chunk)
        torch.testing.assert_close(part.metrics[same], whole.metrics[same], rtol=1e-10, atol=1e-12,
                                   equal_nan=True)
        for a, b in zip(part.grad, whole.grad):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
