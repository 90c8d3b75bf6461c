"""The noise-conditional step with real numbers: the kernel's divergence and J v against autograd, Prop. 2
at every level, the three parametrizations giving one loss and gradient, the sigma^2-weighted DSM loss
against the NCSN formula written out independently, the schedules, and the exact per-level reference
scores against Stein's identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dsmexp import load_dataset
from dsmexp.core.conditioning import ConditionalMLP, NoiseConditional
from dsmexp.core.kernels.conditional import ConditionalKernel
from dsmexp.core.objectives.levels import LEVEL_TERMS, multiscale_terms
from dsmexp.core.objectives.terms import METRICS
from dsmexp.core.reference import reference_score
from dsmexp.core.schedules import Schedule, weights

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def float64():
    """Every tensor of these tests in float64 (the checks go to 1e-9), and the default restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _mlp(embedding="log", scale_output=False, seed=0, dim=2, hidden=(16, 16),
         activation="tanh") -> ConditionalMLP:
    torch.manual_seed(seed)
    return ConditionalMLP(dim, list(hidden), activation, embedding, 8, scale_output).double()


class Wrapped(nn.Module):
    """A user's module f(z, sigma (n, 1)) built around a ConditionalMLP g, returning out(g, z, sigma)."""

    def __init__(self, g: ConditionalMLP, out) -> None:
        super().__init__()
        self.g, self.out = g, out

    def forward(self, z, sigma):
        return self.out(self.g(z, sigma.reshape(-1)), z, sigma.reshape(-1, 1))


def _batch(n=300, m=4, levels=5, sampling="random", seed=1, dim=2, kind="geometric"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)
    schedule = Schedule(kind, levels, 0.01, 1.0, sampling)
    draws = n * m
    eps = torch.randn(dim, draws * schedule.points_per_draw(), generator=gen)
    sigma, level = schedule.draw(draws, gen, torch.device("cpu"))
    return x, eps, sigma, level, schedule


@pytest.mark.parametrize("embedding, scale_output, hidden",
                         [("log", False, (16, 16)), ("fourier", True, (16, 16)),
                          ("fourier", False, (16, 8, 12))])
def test_the_kernel_divergence_and_jv_are_the_jacobians(embedding, scale_output, hidden):
    """div s and J v of the hand-written passes (two hidden layers), the hand-carried tangents (other
    depths) and torch.func (a user's module) equal the full Jacobian by autograd, for every
    parametrization."""
    g = _mlp(embedding, scale_output, hidden=hidden)
    z = torch.randn(2, 7)
    sigma = torch.tensor([0.01, 0.03, 0.1, 0.3, 1.0, 0.5, 0.02])
    v = torch.randn(3, 2, 7)
    for parametrization in ("score", "noise", "data"):
        for net in (g, Wrapped(g, lambda f, z, s: f)):
            model = NoiseConditional(net, parametrization)
            kernel = ConditionalKernel(model)
            fwd = kernel.forward(z, sigma)
            _, jv = kernel.directional(z, sigma, v)
            for i in range(7):
                def score(p, model=model, i=i):
                    return model(p[None], sigma[i:i + 1])[0]

                jac = torch.autograd.functional.jacobian(score, z[:, i])
                torch.testing.assert_close(fwd.s[:, i], model(z[:, i][None], sigma[i:i + 1])[0])
                torch.testing.assert_close(fwd.div[i], jac.trace(), rtol=1e-10, atol=1e-8)
                torch.testing.assert_close(jv[:, :, i], v[:, :, i] @ jac.T, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("activation", ["tanh", "softplus", "silu"])
@pytest.mark.parametrize("embedding, scale_output, parametrization",
                         [("log", False, "score"), ("fourier", True, "noise"), ("log", True, "data")])
def test_the_hand_written_reverse_pass_is_autograds(activation, embedding, scale_output, parametrization):
    """The two-hidden-layer kernel's gradients of sum <s, s_bar[r]> + sum w_r div s (per-point weights,
    three rows as a hybrid step asks: one all-ISM, one all-DSM, one mixed) equal autograd's through the
    hand-carried tangents, and so do its s and div s."""
    model = NoiseConditional(_mlp(embedding, scale_output, activation=activation), parametrization)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 40, generator=gen)
    sigma = torch.exp(torch.empty(40).uniform_(math.log(0.01), 0.0, generator=gen))
    s_bar = torch.randn(3, 2, 40, generator=gen)
    mixed = (sigma < 0.1).double() * torch.rand(40, generator=gen)
    div_weights = [torch.rand(40, generator=gen), None, mixed]
    fast = ConditionalKernel(model)
    slow = ConditionalKernel(model)
    slow.by_hand = False
    assert fast.by_hand
    got, want = fast.forward(z, sigma), slow.forward(z, sigma)
    torch.testing.assert_close(got.s, want.s.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.div, want.div.detach(), rtol=1e-12, atol=1e-10)
    for weights_ in (div_weights, None):
        for g_fast, g_slow in zip(fast.backward(got, s_bar, weights_), slow.backward(want, s_bar, weights_)):
            torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-10)
        want = slow.forward(z, sigma)  # autograd's graph is spent by its backward
    no_div = fast.forward(z, sigma, with_div=False)
    assert no_div.div is None
    for g_fast, g_slow in zip(fast.backward(no_div, s_bar, None), slow.backward(want, s_bar, None)):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-10)


def test_prop2_holds_at_every_level():
    """fit_ism = fit_dsm in expectation (Prop. 2, Eq. 10) at each level, on one shared batch: within
    4.5 combined standard errors at every one of 6 levels (the network is fixed, not trained)."""
    model = NoiseConditional(_mlp(), "score")
    x, eps, sigma, level, schedule = _batch(n=2000, m=25, levels=6)
    lam = weights("sigma2", sigma, 0.5)
    terms = multiscale_terms(ConditionalKernel(model), x, eps, sigma, level, lam, 6, "ism")
    table = dict(zip(LEVEL_TERMS, terms.levels.T))
    assert (table["count"] > 6000).all() and table["count"].sum() == 50000
    gap = (table["fit_ism"] - table["fit_dsm"]).abs()
    combined = (table["fit_ism_se"] ** 2 + table["fit_dsm_se"] ** 2).sqrt()
    assert (gap < 4.5 * combined).all(), (gap / combined)
    assert (table["fit_dsm_se"] > 3 * table["fit_ism_se"])[0]  # DSM's noise at the smallest sigma


def test_the_three_parametrizations_give_one_loss_and_gradient():
    """A network g read as a score, as a noise prediction -sigma g and as a data prediction z + sigma^2 g
    is one score s = g: the same loss, per-level table and gradient for every objective."""
    g = _mlp()
    x, eps, sigma, level, _ = _batch()
    lam = weights("sigma2", sigma, 0.5)
    models = {"score": NoiseConditional(g, "score"),
              "noise": NoiseConditional(Wrapped(g, lambda f, z, s: -s * f), "noise"),
              "data": NoiseConditional(Wrapped(g, lambda f, z, s: z + s * s * f), "data")}
    for loss in ("ism", "dsm", "hybrid"):
        out = {name: multiscale_terms(ConditionalKernel(m), x, eps, sigma, level, lam, 5, loss,
                                      switch_sigma=0.1) for name, m in models.items()}
        close = dict(rtol=1e-9, atol=1e-9, equal_nan=True)
        for name in ("noise", "data"):
            torch.testing.assert_close(out[name].metrics, out["score"].metrics, **close)
            torch.testing.assert_close(out[name].levels, out["score"].levels, **close)
            for a, b in zip(out[name].grad, out["score"].grad):
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_sigma2_weighted_dsm_is_the_ncsn_loss():
    """loss=dsm with weighting=sigma2 and every level each step (sampling=all) is the NCSN objective
    (1/L) sum_i sigma_i^2 E 0.5 |s(x + sigma_i eps, sigma_i) + eps / sigma_i|^2 (seed 003), written here
    as 0.5 mean |sigma s + eps|^2 with the model called directly; the gradient is autograd's of it."""
    model = NoiseConditional(_mlp(), "score")
    x, eps, sigma, level, schedule = _batch(n=200, m=3, levels=4, sampling="all")
    terms = multiscale_terms(ConditionalKernel(model), x, eps, sigma, level, weights("sigma2", sigma, 0.5),
                             4, "dsm")
    z = x.repeat(12, 1) + sigma[:, None] * eps.T
    s = model(z, sigma)
    ncsn = 0.5 * ((sigma[:, None] * s + eps.T) ** 2).sum(1).mean()
    assert terms.metrics[METRICS.index("loss")].item() == pytest.approx(ncsn.item(), rel=1e-12)
    for level_i in range(4):  # each level holds its share of the points
        assert terms.levels[level_i, 0] == 600
    grad = torch.autograd.grad(ncsn, list(model.parameters()))
    for a, b in zip(terms.grad, grad):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_the_hybrid_and_ssm_vr_train_what_they_say():
    """hybrid's gradient is ISM's at the levels below switch_sigma plus DSM's above (each on its own
    points); SSM-VR's fitting term agrees with the exact trace within its noise."""
    model = NoiseConditional(_mlp(), "score")
    x, eps, sigma, level, _ = _batch(n=500, m=8)
    lam = weights("none", sigma, 0.5)
    kernel = ConditionalKernel(model)
    switch = 0.1
    hybrid = multiscale_terms(kernel, x, eps, sigma, level, lam, 5, "hybrid", switch_sigma=switch)
    below = sigma < switch
    parts = {}
    for name, mask in (("ism", below), ("dsm", ~below)):
        parts[name] = multiscale_terms(kernel, x, eps, sigma, level, lam * mask, 5, name)
    for h, a, b in zip(hybrid.grad, parts["ism"].grad, parts["dsm"].grad):
        torch.testing.assert_close(h, a + b, rtol=1e-9, atol=1e-12)
    gen = torch.Generator().manual_seed(5)
    v = torch.randint(0, 2, (4, 2, eps.shape[1]), generator=gen).double() * 2 - 1
    sliced = multiscale_terms(kernel, x, eps, sigma, level, lam, 5, "ssm_vr", v=v)
    row = dict(zip(METRICS, sliced.metrics.tolist()))
    assert abs(row["fit_est"] - row["fit_ism"]) < 4 * row["fit_est_se"]
    assert row["loss"] == pytest.approx(row["norm_est"] + row["fit_est"])


@pytest.mark.parametrize("loss, sampling", [("dsm", "random"), ("hybrid", "random"), ("ism", "all")])
def test_grad_var_is_the_step_gradients_variance_over_the_noise(loss, sampling):
    """grad_var estimates P tr Cov(g | data) (gradvar.py) across a schedule too: over 200 fresh draws of
    the noise and the levels for one small data set, the mean logged grad_var is within 4 combined
    standard errors of P times the trace of the step gradient's covariance across the draws. One noise
    row per group (8 groups); sampling=all puts a row's points at every level into its group, hybrid a
    row's points below and above the switch."""
    kernel = ConditionalKernel(NoiseConditional(_mlp(hidden=(8, 8)), "score"))
    n, m, levels, repeats = 20, 8, 3, 200
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=gen)
    schedule = Schedule("geometric", levels, 0.05, 1.0, sampling)
    draws, per_draw = n * m, schedule.points_per_draw()
    logged, grads = [], []
    for _ in range(repeats):
        eps = torch.randn(2, draws * per_draw, generator=gen)
        sigma, level = schedule.draw(draws, gen, torch.device("cpu"))
        terms = multiscale_terms(kernel, x, eps, sigma, level, weights("sigma2", sigma, 0.5), levels, loss,
                                 switch_sigma=0.2, chunk_size=n * per_draw, draws=draws)
        row = dict(zip(METRICS, terms.metrics.tolist()))
        logged.append(row["grad_var"])
        if loss == "ism":
            assert row["grad_var_ism"] == row["grad_var"]
        grads.append(torch.cat([g.reshape(-1) for g in terms.grad]))
    g = torch.stack(grads)
    points = draws * per_draw
    spread = points * ((g - g.mean(0)) ** 2).sum(1) * repeats / (repeats - 1)
    truth, truth_se = spread.mean().item(), spread.std().item() / math.sqrt(repeats)
    estimate = np.mean(logged)
    estimate_se = np.std(logged, ddof=1) / math.sqrt(repeats)
    assert np.isfinite(logged).all() and truth > 0
    assert abs(estimate - truth) < 4 * math.hypot(truth_se, estimate_se), (estimate, truth, truth_se)


def test_schedules_draw_their_levels():
    geometric = Schedule("geometric", 10, 0.01, 1.0, "random")
    sigmas = geometric.level_sigmas()
    torch.testing.assert_close(sigmas, torch.logspace(-2, 0, 10, dtype=torch.float64))
    sigma, level = geometric.draw(100000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(sigma, sigmas[level]) and abs(torch.bincount(level).double().std() / 10000) < 0.05
    continuous = Schedule("continuous", 4, 0.001, 1.0, "random")
    sigma, level = continuous.draw(100000, torch.Generator().manual_seed(0), torch.device("cpu"))
    bins = torch.log10(sigma) + 3  # uniform in [0, 3): bin b is [0.75 b, 0.75 (b + 1))
    assert torch.equal(level, (bins / 0.75).long()) and sigma.min() >= 0.001 and sigma.max() <= 1.0
    centres = 10 ** (torch.tensor([0.375, 1.125, 1.875, 2.625]) - 3)  # the bins' geometric centres
    torch.testing.assert_close(continuous.level_sigmas(), centres)
    every = Schedule("geometric", 3, 0.1, 1.0, "all")
    sigma, level = every.draw(5, torch.Generator(), torch.device("cpu"))
    assert level.tolist() == [0] * 5 + [1] * 5 + [2] * 5


@pytest.mark.parametrize("name", ["half_moon", "gmm"])
def test_the_exact_level_scores_satisfy_steins_identity(name):
    """E_{z ~ q_sigma}[<grad log q_sigma(z), f(z)> + div f(z)] = 0 for a smooth f (here f(z) = tanh(A z +
    b), div f = sum_i A_ii (1 - tanh^2)), at three levels of the schedule, within 4 standard errors."""
    dataset = load_dataset(name)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 2)), rng.standard_normal(2)
    for sigma in (0.01, 0.1, 1.0):
        x = dataset.sample(40000, 7)
        z = x + sigma * rng.standard_normal(x.shape)
        score = reference_score(dataset, z, sigma)
        t = np.tanh(z @ a.T + b)
        values = (score * t).sum(1) + ((1 - t * t) * np.diag(a)).sum(1)
        se = values.std() / math.sqrt(len(values))
        assert abs(values.mean()) < 4 * se, (sigma, values.mean(), se)
        assert se < 0.2 * np.abs(values).mean()  # the check has power: its noise is well below the terms
