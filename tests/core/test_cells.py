"""Data with edges (dataset=checkerboard, square; dsmexp/core/cells.py) with real numbers: the interval
masses against 50-digit arithmetic, the exact score of q_sigma against Monte Carlo (Tweedie's formula
over draws of the data), against finite differences of its log density, its divergence against finite
differences of the score, the density's normalisation, and the sampler's cells."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from dsmexp import load_dataset
from dsmexp.core.cells import log_interval_mass
from dsmexp.core.densities import ReferenceUnavailable

pytestmark = pytest.mark.timeout(300)


def test_log_interval_masses_match_50_digit_arithmetic():
    """log(Phi(hi) - Phi(lo)) in both far tails, across 0 and for intervals 1e-4 wide, to 1e-12."""
    lo = np.array([-50.0, -3.0, -1.0, 0.5, 30.0, -1e-3, -40.001, 5.0, -8.0])
    hi = np.array([-49.0, -2.0, 2.0, 0.7, 30.5, 1e-3, -40.0, 5.0001, 37.0])
    mpmath.mp.dps = 60
    exact = [float(mpmath.log(mpmath.ncdf(mpmath.mpf(h)) - mpmath.ncdf(mpmath.mpf(lo_)))
                   if h < 0 or lo_ < 0 else
                   mpmath.log(mpmath.ncdf(-mpmath.mpf(lo_)) - mpmath.ncdf(-mpmath.mpf(h))))
             for lo_, h in zip(lo, hi)]
    np.testing.assert_allclose(log_interval_mass(lo, hi), exact, rtol=1e-12)


@pytest.mark.parametrize("name, sigma", [("checkerboard", 0.15), ("checkerboard", 0.5), ("square", 0.1)])
def test_the_score_is_tweedies_posterior_mean_by_monte_carlo(name, sigma):
    """grad log q_sigma(z) = (E[x | z] - z) / sigma^2: over 2 million draws of the data, the self-normalised
    estimate at 24 points (inside cells, on edges and corners, outside the board) is within 4.5 of its
    standard errors of the closed form in each coordinate."""
    data = load_dataset(name)
    x = data.sample(2_000_000, 1)
    rng = np.random.default_rng(2)
    edge = data.upper[0]
    z = np.concatenate([data.sample(8, 3) + sigma * rng.standard_normal((8, 2)),
                        [edge, data.lower[0], [edge[0], 0.3 * edge[1]], [0.0, 0.0]],
                        rng.uniform(-1, 1, (12, 2)) * (edge + 2 * sigma)])
    score = data.density(z, sigma)[1]
    for zi, si in zip(z, score):
        log_w = -0.5 * ((x - zi) ** 2).sum(1) / sigma**2
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        u = (x - zi) / sigma**2 - si  # the estimate's error is sum w u (a ratio estimator)
        mc = (w[:, None] * u).sum(0)
        se = np.sqrt((w[:, None] ** 2 * (u - mc) ** 2).sum(0))
        assert (np.abs(mc) <= 4.5 * se + 1e-12).all(), (zi, si, mc, se)
        assert 1 / (w**2).sum() > 1000  # enough draws near every point


@pytest.mark.parametrize("name", ["checkerboard", "square"])
@pytest.mark.parametrize("sigma", [0.05, 1.0])
def test_the_score_and_divergence_are_the_derivatives_of_the_log_density(name, sigma):
    """Score against central differences of log q_sigma, divergence against differences of the score,
    within 1e-6 of the largest value, at points within a few sigma of the edges and far from every cell."""
    data = load_dataset(name)
    rng = np.random.default_rng(0)
    z = np.concatenate([data.sample(20, 4) + sigma * rng.standard_normal((20, 2)),
                        rng.uniform(-4, 4, (10, 2))])
    log_q, score, div = data.density(z, sigma)
    h = 1e-4 * sigma
    unit = np.eye(2)
    fd = np.stack([(data.density(z + h * e, sigma)[0] - data.density(z - h * e, sigma)[0]) / (2 * h)
                   for e in unit], 1)
    fd_div = sum((data.density(z + h * e, sigma)[1][:, i] - data.density(z - h * e, sigma)[1][:, i]) / (2 * h)
                 for i, e in enumerate(unit))
    assert np.isfinite(log_q).all() and np.isfinite(score).all() and np.isfinite(div).all()
    assert np.abs(fd - score).max() <= 1e-6 * np.abs(score).max()
    assert np.abs(fd_div - div).max() <= 1e-6 * np.abs(div).max()


@pytest.mark.parametrize("sigma", [1e-3, 0.05])
def test_the_closed_form_matches_50_digit_derivatives_far_and_near(sigma):
    """At small sigma a float64 finite difference cannot resolve a score of size 1/sigma^2 off the
    cells, so the score and the divergence are held against 50-digit numerical derivatives of log q_sigma
    (mpmath, from Phi alone) on edges and corners, inside cells and up to 1000 sigma from every cell:
    log q and the score to 1e-9, the divergence to 1e-9 within 30 sigma of the cells and 1e-4 beyond."""
    data = load_dataset("checkerboard")
    mpmath.mp.dps = 50
    s = mpmath.mpf(sigma)

    def mass(z, a, b):  # Phi(u_b) - Phi(u_a), on the side of 0 where it is no difference of two near-1s
        u_a, u_b = (mpmath.mpf(a) - z) / s, (mpmath.mpf(b) - z) / s
        return mpmath.ncdf(-u_a) - mpmath.ncdf(-u_b) if u_a > 0 else mpmath.ncdf(u_b) - mpmath.ncdf(u_a)

    def log_q(z0, z1):
        total = sum(mass(z0, lo[0], hi[0]) * mass(z1, lo[1], hi[1]) for lo, hi in zip(data.lower, data.upper))
        return mpmath.log(total / 8)

    points = np.array([[-1.0, -1.0], [-0.5, -1.5 + 0.3 * sigma], [0.2, 0.7], [2.0 + 3 * sigma, -1.9],
                       [2.0 + 1000 * sigma, 0.5], [-2.0 - 200 * sigma, -2.0 - 300 * sigma], [0.0, 0.0]])
    got_log_q, got_score, got_div = data.density(points, sigma)
    for p, lq, sc, dv in zip(points, got_log_q, got_score, got_div):
        z0, z1 = mpmath.mpf(p[0]), mpmath.mpf(p[1])
        along = [lambda t, z0=z0, z1=z1: log_q(z0 + t, z1), lambda t, z0=z0, z1=z1: log_q(z0, z1 + t)]
        want = np.array([float(mpmath.diff(f, 0)) for f in along])
        want_div = sum(float(mpmath.diff(f, 0, 2)) for f in along)
        assert lq == pytest.approx(float(log_q(z0, z1)), rel=1e-9)
        assert np.abs(sc - want).max() <= 1e-9 * max(np.abs(want).max(), 1.0), (p, sc, want)
        away = np.maximum(np.maximum(data.lower - p, p - data.upper), 0).sum(1).min() / sigma
        # off the cells the divergence is a difference of two terms (u / sigma)^2 apart with exponents
        # of size u^2 / 2 (u the distance in sigma): float64 keeps about eps u^4 of it
        assert dv == pytest.approx(want_div, rel=1e-9 if away < 30 else 1e-4), (p, away, dv, want_div)


def test_the_density_integrates_to_one_and_samples_lie_on_the_cells():
    data = load_dataset("checkerboard")
    grid = np.linspace(-4, 4, 801)
    zz = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    q = np.exp(data.density(zz, 0.2)[0])
    assert q.sum() * (grid[1] - grid[0]) ** 2 == pytest.approx(1.0, abs=1e-6)
    x = data.sample(80_000, 0)
    inside = ((x[:, None] >= data.lower) & (x[:, None] <= data.upper)).all(2)
    assert (inside.sum(1) == 1).all()  # every point in exactly one filled cell
    share = inside.mean(0)
    assert len(share) == 8 and np.abs(share - 1 / 8).max() < 4 * math.sqrt(1 / 8 * 7 / 8 / 80_000)


def test_sigma_zero_has_no_density():
    with pytest.raises(ReferenceUnavailable, match="Assumption 1"):
        load_dataset("square").density(np.zeros((1, 2)), 0.0)
