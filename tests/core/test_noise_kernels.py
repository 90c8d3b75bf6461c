"""noise.kernel=laplace and student_t: the draws follow their kernel, DSM's target is the kernel's
grad_z log q(z | x), Prop. 2 holds under each kernel, and the exact scores of q_sigma under each kernel
match adaptive quadrature, the finite differences of their own log density and Stein's identity."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from dsmexp.config.compose import load_dataset
from dsmexp.core.kernel_densities import empirical_kernel_density, laplace_mixture, student_t_mixture
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.noise import GAUSSIAN, NoiseKernel, draw_noise, standard_gamma
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.reference import (
    empirical_score,
    reference_divergence,
    reference_log_density,
    reference_score,
)
from tests.core.test_objectives import half_moon, metric, random_net

LAPLACE, STUDENT = NoiseKernel("laplace"), NoiseKernel("student_t", 3.0)
KERNELS = [LAPLACE, STUDENT, NoiseKernel("student_t", 1.5)]


def test_the_gaussian_draws_are_the_ones_before_kernels_existed():
    """Bitwise: the default kernel draws exactly torch.randn in the feature-major layout, pairs included."""
    x = torch.zeros(7, 3)
    plain = draw_noise(x, 4, False, torch.Generator().manual_seed(5))
    fresh = torch.randn((3, 4, 7), generator=torch.Generator().manual_seed(5))
    assert torch.equal(plain, fresh.permute(1, 2, 0))
    paired = draw_noise(x, 4, True, torch.Generator().manual_seed(5), GAUSSIAN)
    half = torch.randn((3, 2, 1, 7), generator=torch.Generator().manual_seed(5))
    assert torch.equal(paired, torch.cat([half, -half], 2).reshape(3, 4, 7).permute(1, 2, 0))


@pytest.mark.parametrize("shape", [0.75, 1.5, 15.0])
def test_the_gamma_sampler_follows_the_gamma_law(shape):
    gen = torch.Generator().manual_seed(1)
    draws = standard_gamma(shape, (20000,), gen, torch.device("cpu"), torch.float64)
    assert stats.kstest(draws.numpy(), stats.gamma(shape).cdf).pvalue > 1e-3


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.describe())
def test_the_draws_follow_their_kernel(kernel):
    """Torch (training) and numpy (held-out) draws: each coordinate's marginal (Laplace(0, 1), or t_df)
    and, for the multivariate t, |eps|^2 / d ~ F(d, df) (the coordinates share one scale)."""
    eps = draw_noise(torch.zeros(4000, 3), 6, True, torch.Generator().manual_seed(2), kernel).double()
    assert torch.equal(eps[0], -eps[1])  # antithetic pairs
    held_out = kernel.draw_numpy(np.random.default_rng(3), (20000, 3))
    marginal = stats.laplace() if kernel.kind == "laplace" else stats.t(kernel.df)
    for sample in (eps.reshape(-1, 3).numpy()[::2], held_out):
        assert stats.kstest(sample[:, 0], marginal.cdf).pvalue > 1e-3
        if kernel.kind == "student_t":
            assert stats.kstest((sample**2).sum(1) / 3, stats.f(3, kernel.df).cdf).pvalue > 1e-3


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.describe())
def test_the_target_is_the_gradient_of_the_log_kernel(kernel):
    e = np.random.default_rng(4).standard_normal((50, 3)) * 2
    sigma, h = 0.3, 1e-6
    log_k = lambda u: kernel.log_density(u, sigma)  # noqa: E731
    numeric = np.stack([(log_k(sigma * e + h * u) - log_k(sigma * e - h * u))
                        / (2 * h) for u in np.eye(3)], 1)
    target = kernel.target(torch.as_tensor(e.T), sigma).T.numpy()
    np.testing.assert_allclose(target, numeric, rtol=1e-6, atol=1e-6)
    # normalised: the density integrates to one (one coordinate of the product or the radial law in 1-D)
    one_d = integrate.quad(lambda u: math.exp(kernel.log_density(np.array([u]), sigma)), -np.inf, np.inf)[0]
    assert one_d == pytest.approx(1.0, rel=1e-7)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.describe())
@pytest.mark.parametrize("sigma", [1e-1, 1e-2])
def test_prop2_holds_under_each_kernel(kernel, sigma):
    """E div s(z) = -E <s(z), grad_z log q(z | x)> within 4 combined standard errors, and the logged
    fit_dsm and const_dsm are the closed-form targets' means on the same z."""
    model, x = random_net(), half_moon(1000)
    eps = draw_noise(x, 1000, False, torch.Generator().manual_seed(1), kernel)
    terms = step_terms(make_kernel(model), x, eps, sigma, "ism", noise=kernel)
    fit_ism, fit_dsm = metric(terms, "fit_ism"), metric(terms, "fit_dsm")
    se = math.hypot(metric(terms, "fit_ism_se"), metric(terms, "fit_dsm_se"))
    assert abs(fit_ism) > 0.1
    assert abs(fit_ism - fit_dsm) < 4 * se, (fit_ism, fit_dsm, se)
    e = eps[:50].double().reshape(-1, 2)
    z = x.double().repeat(50, 1) + sigma * e
    with torch.no_grad():
        s = model.double()(z)
    if kernel.kind == "laplace":
        target = -torch.sign(e) / sigma
    else:
        target = -(kernel.df + 2) * e / (sigma * (kernel.df + (e * e).sum(1, keepdim=True)))
    part = step_terms(make_kernel(model), x.double(), eps[:50].double(), sigma, "dsm_s", noise=kernel)
    assert metric(part, "fit_dsm") == pytest.approx(float(-(s * target).sum(1).mean()), rel=1e-9)
    assert metric(part, "const_dsm") == pytest.approx(float(0.5 * (target * target).sum(1).mean()), rel=1e-9)


def normal_laplace(u: float, a: float, b: float) -> float:
    """(N(0, a^2) * Laplace(0, b))(u) by adaptive quadrature, split at the kink."""
    f = lambda y: stats.norm.pdf(y, 0, a) * math.exp(-abs(u - y) / b) / (2 * b)  # noqa: E731
    return sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0]
               for lo, hi in ((-np.inf, u), (u, np.inf)))


def t_blurred(z: np.ndarray, a: float, sigma: float, df: float) -> float:
    """(N(0, a^2 I_2) * t_df(0, sigma^2 I_2))(z) by adaptive quadrature over the t kernel's Gamma scale."""
    f = lambda w: (stats.gamma.pdf(w, df / 2, scale=2 / df)  # noqa: E731
                   * stats.multivariate_normal.pdf(z, np.zeros(2), (a * a + sigma * sigma / w) * np.eye(2)))
    edges = (0, 1e-6, 1e-3, 1, 10, np.inf)
    return sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=1000)[0]
               for lo, hi in zip(edges, edges[1:]))


@pytest.mark.parametrize("a, b, u", [(0.05, 1.0, 0.3), (0.05, 1e-3, 0.01), (0.5, 0.1, -2.0),
                                     (1.0, 1e-4, 3.0)])
def test_the_laplace_blur_matches_adaptive_quadrature(a, b, u):
    log_q = laplace_mixture(np.array([[u]]), np.zeros((1, 1)), np.zeros(1), np.array([[a * a]]), b)[0][0]
    assert log_q == pytest.approx(math.log(normal_laplace(u, a, b)), abs=1e-9)


@pytest.mark.parametrize("a, sigma, z", [(0.05, 1e-3, (0.06, -0.02)), (0.05, 0.5, (1.0, 0.3)),
                                         (0.5, 0.1, (3.0, -2.0)), (0.05, 0.1, (10.0, 0.0))])
def test_the_student_t_blur_matches_adaptive_quadrature(a, sigma, z):
    z = np.array([z])
    log_q = student_t_mixture(z, np.zeros((1, 2)), np.zeros(1), np.full((1, 2), a * a), sigma, 3.0)[0][0]
    assert log_q == pytest.approx(math.log(t_blurred(z[0], a, sigma, 3.0)), abs=1e-9)


def gradient(f, z: np.ndarray, h: float) -> np.ndarray:
    """Fourth-order central differences of f: (n, d) -> (n,)."""
    return np.stack([(-f(z + 2 * h * u) + 8 * f(z + h * u) - 8 * f(z - h * u) + f(z - 2 * h * u)) / (12 * h)
                     for u in np.eye(z.shape[1])], 1)


CASES = [("half_moon", {}, LAPLACE), ("half_moon", {}, STUDENT), ("gmm", {}, LAPLACE), ("gmm", {}, STUDENT),
         ("gaussian", {"rotate": True, "condition": 4.0}, STUDENT), ("gaussian", {"condition": 4.0}, LAPLACE),
         ("half_moon", {"dim": 5}, LAPLACE), ("half_moon", {"dim": 5}, STUDENT)]


@pytest.mark.parametrize("name, params, kernel", CASES, ids=lambda v: getattr(v, "kind", str(v)))
def test_each_kernels_reference_score_is_the_gradient_of_its_log_density(name, params, kernel):
    dataset = load_dataset(name, 1, **params)
    rng = np.random.default_rng(5)
    width = getattr(dataset, "noise", 0.5)
    for sigma in (1e-3, 0.1, 1.0):
        x = dataset.sample(40 if dataset.dim == 2 else 8, 2)
        z = x + sigma * kernel.draw_numpy(rng, x.shape)
        h = 3e-3 * math.sqrt(width**2 + sigma**2)
        score = reference_score(dataset, z, sigma, kernel)
        numeric = gradient(lambda p, sigma=sigma: reference_log_density(dataset, p, sigma, kernel), z, h)
        scale = np.linalg.norm(score, axis=1, keepdims=True)
        assert np.abs(score - numeric).max(1).max() < 1e-6 * max(1.0, float(scale.max())), (sigma, name)
        assert (np.abs(score - numeric) / scale).max() < 1e-5, sigma
        div = reference_divergence(dataset, z, sigma, kernel)
        def coordinate(p, i, sigma=sigma):
            return reference_score(dataset, p, sigma, kernel)[:, i]

        numeric_div = sum(gradient(lambda p, i=i: coordinate(p, i), z, h)[:, i] for i in range(z.shape[1]))
        np.testing.assert_allclose(div, numeric_div, rtol=1e-5, atol=1e-5 * float((scale**2).max()))


@pytest.mark.parametrize("name", ["half_moon", "gmm"])
@pytest.mark.parametrize("kernel", [LAPLACE, STUDENT], ids=lambda k: k.kind)
def test_each_kernels_reference_satisfies_steins_identity(name, kernel):
    """E_{z ~ q_sigma}[<grad log q_sigma(z), f(z)> + div f(z)] = 0 for f(z) = tanh(A z + b) at three sigmas,
    z drawn through the kernel, within 4 standard errors (as the Gaussian levels' test in test_multiscale)."""
    dataset = load_dataset(name)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 2)), rng.standard_normal(2)
    for sigma in (0.01, 0.1, 1.0):
        x = dataset.sample(8000, 7)
        z = x + sigma * kernel.draw_numpy(rng, x.shape)
        score = reference_score(dataset, z, sigma, kernel)
        t = np.tanh(z @ a.T + b)
        values = (score * t).sum(1) + ((1 - t * t) * np.diag(a)).sum(1)
        se = values.std() / math.sqrt(len(values))
        assert abs(values.mean()) < 4 * se, (sigma, values.mean(), se)
        assert se < 0.2 * np.abs(values).mean()


@pytest.mark.parametrize("kernel", [LAPLACE, STUDENT], ids=lambda k: k.kind)
def test_the_empirical_kernel_mixture_score_is_its_gradient(kernel):
    rng = np.random.default_rng(6)
    x, sigma = rng.standard_normal((30, 2)), 0.3
    z = x[:10] + sigma * kernel.draw_numpy(rng, (10, 2))
    score = empirical_score(x, z, sigma, kernel)
    numeric = gradient(lambda p: empirical_kernel_density(x, p, sigma, kernel)[0], z, 1e-4)
    np.testing.assert_allclose(score, numeric, rtol=1e-6, atol=1e-6)
