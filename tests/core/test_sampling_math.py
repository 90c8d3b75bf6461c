"""The samplers and the sample-quality numbers with real numbers: each quality number on pairs of
distributions whose distance is known in closed form, and each sampler on a Gaussian, whose q_sigma and
exact score are known at every sigma (the probability-flow ODE even maps it exactly)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from dsmexp.core import quality as q
from dsmexp.core.samplers import SAMPLERS, geometric_sigmas, initial_points

pytestmark = pytest.mark.timeout(300)


def gaussians(n=2000, d=2, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    mu = np.zeros(d)
    mu[0] = shift
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)) + mu


@pytest.mark.parametrize("h", [0.5, 1.0, 2.0])
def test_mmd2_of_two_unit_gaussians_is_the_closed_form(h):
    """N(0, I) against N(mu, I), RBF bandwidth h: MMD^2 = 2 c (1 - exp(-|mu|^2 / (2 (h^2 + 2)))),
    c = (h^2 / (h^2 + 2))^(d/2); and unbiased: about 0 (within its noise) for the same distribution."""
    x, y = gaussians(shift=1.5)
    c = (h * h / (h * h + 2)) ** 1.0
    want = 2 * c * (1 - math.exp(-1.5**2 / (2 * (h * h + 2))))
    assert q.mmd2(x, y, h) == pytest.approx(want, rel=0.1)
    same = [q.mmd2(*gaussians(n=1000, seed=s), h) for s in range(6)]
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(6) + 1e-4
    assert q.median_bandwidth(x, y) > 0


def test_w2_of_two_shifted_gaussians_is_the_shift():
    """W2(N(0, I), N(mu, I)) = |mu|: exact (POT) within the empirical measures' bias, sliced below it
    (a projection shortens the shift: sliced W2^2 = |mu|^2 / d on average over directions)."""
    x, y = gaussians(shift=3.0)
    assert q.w2(x, y) == pytest.approx(3.0, abs=0.15)
    assert q.w2_sliced(x, y, seed=0) == pytest.approx(3.0 / math.sqrt(2), rel=0.1)
    assert q.w2(*gaussians(seed=1)) < 0.2


def test_energy_distance_of_two_1d_gaussians_is_the_closed_form():
    """N(0, 1) against N(mu, 1): 2 E|X - Y| - E|X - X'| - E|Y - Y'| with E|N(m, 2)| in closed form."""
    rng = np.random.default_rng(3)
    mu = 1.0
    x, y = rng.standard_normal((3000, 1)), rng.standard_normal((3000, 1)) + mu

    def abs_mean(m, s):
        return s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * (1 - 2 * norm.cdf(-m / s))

    want = 2 * abs_mean(mu, math.sqrt(2)) - 2 * abs_mean(0, math.sqrt(2))
    assert q.energy_distance(x, y) == pytest.approx(want, rel=0.1)


def test_ksd_is_zero_for_the_target_and_grows_with_the_shift():
    """KSD^2 of a sample of N(0, I) against N(0, I)'s score: about 0 (unbiased U-statistic); of N(mu, I)
    samples: positive, and larger for the larger shift."""
    values = []
    for seed in range(5):
        x, _ = gaussians(n=600, seed=seed)
        values.append(q.ksd(x, -x))
    assert abs(np.mean(values)) < 3 * np.std(values) / math.sqrt(5) + 1e-4
    _, near = gaussians(n=600, shift=0.5)
    _, far = gaussians(n=600, shift=1.5)
    assert q.ksd(near, -near) > 10 * abs(np.mean(values))
    assert q.ksd(far, -far) > 2 * q.ksd(near, -near)


def test_mixture_weights_recover_the_true_weights():
    rng = np.random.default_rng(4)
    means, weights, scales = np.array([[5.0, 5.0], [-5.0, -5.0]]), np.array([0.8, 0.2]), np.ones(2)
    component = rng.choice(2, size=5000, p=weights)
    x = means[component] + rng.standard_normal((5000, 2))
    np.testing.assert_allclose(q.mixture_weights(x, means, weights, scales), weights, atol=0.02)


def gaussian_score(z, sigma):
    """The exact score of q_sigma for N(0, I) data: -z / (1 + sigma^2)."""
    return -z / (1 + sigma[:, None] ** 2)


def run(name, x0, **settings):
    s = {"steps": 200, "step_size": 0.05, "sigma": 0.0, "eps": 0.05, "steps_per_level": 200,
         "snr": 0.16, "corrector_steps": 1, "denoise": False, "method": "dopri5", "rtol": 1e-6,
         "atol": 1e-6} | settings
    calls = []
    out = SAMPLERS[name].fn(gaussian_score, x0, s, torch.Generator().manual_seed(1), calls.append)
    return out, sum(calls)


def test_langevin_and_annealed_langevin_reach_the_target_variance():
    gen = torch.Generator().manual_seed(0)
    x0 = initial_points("uniform", 4000, 2, (-8.0, 8.0), 1.0, gen, torch.float64)
    out, calls = run("langevin", x0, steps=1500, step_size=0.05)
    assert calls == 1500
    assert out.var(0).mean().item() == pytest.approx(1.0, rel=0.06)  # ULA's bias at this step: ~1%
    sigmas = geometric_sigmas(5.0, 0.5, 6)
    out, calls = run("annealed_langevin", x0, sigmas=sigmas, steps_per_level=300, eps=0.05)
    assert calls == 6 * 300
    assert out.var(0).mean().item() == pytest.approx(1 + 0.5**2, rel=0.06)


@pytest.mark.parametrize("name", ["reverse_sde", "pc"])
def test_the_reverse_sde_samplers_end_at_q_sigma_min(name):
    gen = torch.Generator().manual_seed(0)
    sigmas = geometric_sigmas(10.0, 0.1, 500)
    x0 = initial_points("gaussian", 4000, 2, (-8.0, 8.0), math.sqrt(1 + 10.0**2), gen, torch.float64)
    out, _ = run(name, x0, sigmas=sigmas)
    assert out.mean(0).abs().max().item() < 0.1
    assert out.var(0).mean().item() == pytest.approx(1 + 0.1**2, rel=0.08)


def test_the_probability_flow_ode_maps_the_gaussian_exactly():
    """For N(0, I) data the ODE dx/dsigma = -sigma s is linear: x(sigma) = x0 sqrt((1 + sigma^2) /
    (1 + sigma_max^2)), whatever x0; torchdiffeq's dopri5 gets it to its tolerance."""
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out, calls = run("pf_ode", x0, sigmas=[10.0, 0.1])
    torch.testing.assert_close(out, x0 * math.sqrt((1 + 0.01) / (1 + 100.0)), rtol=1e-4, atol=1e-5)
    assert calls > 0
    denoised, _ = run("pf_ode", x0, sigmas=[10.0, 0.1], denoise=True)
    torch.testing.assert_close(denoised, out * (1 - 0.01 / 1.01), rtol=1e-4, atol=1e-5)


def test_the_probability_flow_log_likelihood_of_a_gaussian_is_exact():
    """N(0, I) data: s = -z / (1 + sigma^2), div s = -d / (1 + sigma^2); the ODE gives log q_{sigma_min}
    of N(0, (1 + sigma_min^2) I) to the solver's tolerance, from the exact end density at sigma_max."""
    from dsmexp.core.likelihood import pf_ode_log_likelihood

    def gauss_log(z, var):
        return -0.5 * (z * z).sum(1) / var - z.shape[1] / 2 * math.log(2 * math.pi * var)

    def score_and_div(z, sigma):
        return -z / (1 + sigma[:, None] ** 2), -z.shape[1] / (1 + sigma**2)

    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2
    got = pf_ode_log_likelihood(score_and_div, x, 0.1, 10.0, lambda z: gauss_log(z, 1 + 100.0), rtol=1e-7,
                                atol=1e-7)
    torch.testing.assert_close(got, gauss_log(x, 1 + 0.01), rtol=1e-5, atol=1e-5)


def test_annealed_samplers_walk_the_trained_levels():
    """The sampler's sigmas are the geometric schedule's levels, bitwise, largest first."""
    from dsmexp.core.schedules import Schedule

    levels = Schedule("geometric", 10, 0.01, 1.0).level_sigmas().tolist()
    assert geometric_sigmas(1.0, 0.01, 10) == levels[::-1]
    assert geometric_sigmas(20.0, 1.0, 10)[0] == pytest.approx(20.0, rel=1e-15)
