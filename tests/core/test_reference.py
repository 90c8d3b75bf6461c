"""Reference scores against independent computations, and the identities of the seed documents."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.stats import multivariate_normal

import dsmexp
from dsmexp.api import reference_divergence, reference_log_density, reference_score
from dsmexp.config import load_dataset
from dsmexp.core.datasets import Gaussian
from dsmexp.core.densities import ReferenceUnavailable
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS
from dsmexp.core.reference import empirical_score
from dsmexp.records import artifacts, metrics_file
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

POINTS = {"half_moon": [[0.0, 0.0], [1.0, 0.0], [0.5, 0.25], [2.5, 1.5], [1.0, -0.55], [3.0, -2.0]],
          "swiss_roll": [[0.0, 0.0], [0.5, 0.5], [-1.0, 0.3], [1.2, -0.4], [2.0, 2.0]]}


def adaptive_quadrature(ds, z: np.ndarray, sigma: float) -> tuple[float, np.ndarray]:
    """log q_sigma(z) and its score by scipy's adaptive quad over the curve parameter (slow, independent)."""
    var = ds.noise**2 + sigma**2
    dense = np.concatenate([c.points(np.linspace(c.t0, c.t1, 20001)) for c in ds.curves])
    shift = ((dense - z) ** 2).sum(1).min()  # keeps exp() in range far from the data
    density, numerator = 0.0, np.zeros(2)
    for c in ds.curves:
        def f(t, k, c=c):
            p = c.points(np.array(t))
            g = math.exp(-(((z - p) ** 2).sum() - shift) / (2 * var)) * c.weight / (c.t1 - c.t0)
            return g if k < 0 else g * (p[k] - z[k]) / var
        edges = np.linspace(c.t0, c.t1, 120)
        for k in (-1, 0, 1):
            total = sum(quad(f, a, b, args=(k,), epsabs=0, epsrel=1e-12, limit=200)[0]
                        for a, b in zip(edges[:-1], edges[1:]))
            if k < 0:
                density += total
            else:
                numerator[k] += total
    return math.log(density) - shift / (2 * var) - math.log(2 * math.pi * var), numerator / density


@pytest.mark.parametrize("name", ["half_moon", "swiss_roll"])
@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_curve_reference_matches_adaptive_quadrature(name, sigma):
    ds = load_dataset(name)
    z = np.array(POINTS[name])
    log_q, score = reference_log_density(ds, z, sigma), reference_score(ds, z, sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [adaptive_quadrature(ds, zi, sigma) for zi in z]
    for i, (log_q_ref, score_ref) in enumerate(expected):
        assert log_q[i] == pytest.approx(log_q_ref, rel=1e-8)
        assert np.linalg.norm(score[i] - score_ref) < 1e-8 * max(np.linalg.norm(score_ref), 1.0)


@pytest.mark.parametrize("name", ["half_moon", "swiss_roll", "gaussian"])
def test_score_is_the_gradient_of_the_log_density(name):
    ds = load_dataset(name)
    z = ds.sample(20, seed=5) + 0.05 * np.random.default_rng(0).standard_normal((20, 2))
    h = 1e-5
    fd = np.stack([(reference_log_density(ds, z + h * e, 0.02) - reference_log_density(ds, z - h * e, 0.02))
                   / (2 * h) for e in np.eye(2)], 1)
    np.testing.assert_allclose(reference_score(ds, z, 0.02), fd, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name, dim", [("half_moon", 2), ("half_moon", 5), ("swiss_roll", 2), ("gaussian", 2),
                                       ("gmm", 2), ("gmm", 4)])
def test_divergence_is_the_trace_of_the_score_jacobian(name, dim):
    """The closed-form Laplacian of log q_sigma against a central difference of the exact score."""
    ds = load_dataset(name, dim=dim) if name != "gaussian" else load_dataset(name)
    z = ds.sample(20, seed=5) + 0.3 * np.random.default_rng(0).standard_normal((20, ds.dim))
    h = 1e-5
    fd = sum((reference_score(ds, z + h * e, 0.05) - reference_score(ds, z - h * e, 0.05))[:, k] / (2 * h)
             for k, e in enumerate(np.eye(ds.dim)))
    div = reference_divergence(ds, z, 0.05)
    np.testing.assert_allclose(div, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())
    assert np.all(np.isfinite(div))


def test_gaussian_reference_is_the_closed_form():
    ds = Gaussian(10, 3, np.array([1.0, 0.0, -1.0]), np.array([[2.0, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]]))
    z = np.random.default_rng(1).standard_normal((7, 3))
    cov = ds.cov + 0.3**2 * np.eye(3)
    np.testing.assert_allclose(reference_score(ds, z, 0.3), -(z - ds.mean) @ np.linalg.inv(cov), rtol=1e-12)
    np.testing.assert_allclose(reference_log_density(ds, z, 0.3),
                               multivariate_normal(ds.mean, cov).logpdf(z), rtol=1e-12)


def test_public_function_takes_a_dataset_name():
    z = np.array([[0.3, 0.4]])
    np.testing.assert_array_equal(dsmexp.reference_score("half_moon", z, 0.01),
                                  reference_score(load_dataset("half_moon", noise=0.05), z, 0.01))
    with pytest.raises(ReferenceUnavailable):
        reference_score(load_dataset("half_moon", noise=0.0), z, 0.0)


def test_tweedie_posterior_mean_of_the_empirical_mixture():
    """E[x | z] from the mixture posterior equals z + sigma^2 grad log q_sigma(z) (seeds 000, 004)."""
    x = load_dataset("half_moon").sample(500, seed=2)
    sigma = 0.1
    z = x[:50] + sigma * np.random.default_rng(3).standard_normal((50, 2))
    sq = ((z[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    w = np.exp(-(sq - sq.min(1, keepdims=True)) / (2 * sigma**2))
    posterior_mean = (w @ x) / w.sum(1, keepdims=True)
    np.testing.assert_allclose(z + sigma**2 * empirical_score(x, z, sigma), posterior_mean, rtol=1e-10)


def network(seed: int, output_scale: float) -> ScoreMLP:
    torch.manual_seed(seed)
    model = ScoreMLP(2, [16, 32], "tanh").double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
        model.layers[-1].weight.mul_(output_scale)
    return model


NETWORKS = ((1, 1.0), (2, 10.0))  # two clearly different score fields


@pytest.fixture(scope="module")
def noised_half_moon():
    """x ~ p_data, eps, z = x + sigma eps, and grad log q_sigma(z), for sigma = 0.05."""
    ds, sigma = load_dataset("half_moon"), 0.05
    x = torch.as_tensor(ds.sample(20000, seed=11))
    eps = torch.randn(5, 20000, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    z = (x + sigma * eps).reshape(-1, 2)
    return x, eps, sigma, z, torch.as_tensor(reference_score(ds, z.numpy(), sigma))


def esm_per_point(model: ScoreMLP, z: torch.Tensor, ref: torch.Tensor):
    """The network's score, divergence and 0.5 |s - grad log q|^2 at each point."""
    fwd = make_kernel(model).forward(z.T.contiguous())
    s = fwd.s.detach().T
    return s, fwd.div.detach(), 0.5 * ((s - ref) ** 2).sum(1)


def offsets_across_networks(noised, loss: str, cross_term):
    """For each of the two networks: the logged loss minus ESM on the same z, and the per-point term
    whose mean (zero by the identity under test) is all that separates the two offsets."""
    x, eps, sigma, z, ref = noised
    offsets, esm_means, cross = [], [], []
    for seed, scale in NETWORKS:
        model = network(seed, scale)
        terms = step_terms(make_kernel(model), x, eps, sigma, loss)
        s, div, esm = esm_per_point(model, z, ref)
        offsets.append(float(terms.metrics[METRICS.index(f"loss_{loss}")]) - float(esm.mean()))
        esm_means.append(float(esm.mean()))
        cross.append(cross_term(s, div))
    se = float((cross[0] - cross[1]).std() / math.sqrt(len(z)))
    return offsets, esm_means, cross, se


def test_hyvarinen_ism_minus_esm_is_the_same_constant_for_two_networks(noised_half_moon):
    """Seed 001: ISM = ESM + C, with C = -0.5 E|grad log q|^2 independent of the network."""
    ref = noised_half_moon[-1]
    offsets, esm_means, cross, se = offsets_across_networks(
        noised_half_moon, "ism", lambda s, div: div + (s * ref).sum(1))  # mean zero by Prop. 1
    assert abs(esm_means[0] - esm_means[1]) > 50 * se  # the networks really differ
    assert abs(offsets[0] - offsets[1]) < 4 * se
    constant = -0.5 * float((ref * ref).sum(1).mean())
    for offset, c in zip(offsets, cross):
        assert offset == pytest.approx(constant, abs=4 * float(c.std() / math.sqrt(len(c))))


def test_vincent_dsm_minus_esm_is_the_same_constant_for_two_networks(noised_half_moon):
    """Seed 000: DSM = ESM + C with C independent of the network."""
    _, eps, sigma, _, ref = noised_half_moon
    e = eps.reshape(-1, 2)  # the same point order as z
    offsets, esm_means, _, se = offsets_across_networks(
        noised_half_moon, "dsm", lambda s, div: (s * (e / sigma + ref)).sum(1))  # Vincent's cross term
    assert abs(esm_means[0] - esm_means[1]) > 20 * se
    assert abs(offsets[0] - offsets[1]) < 4 * se


def test_ism_on_gaussian_data_drives_esm_to_zero(tmp_path):
    """A linear score model contains the truth for Gaussian data: ISM training finds it, up to the
    finite-sample error of N = 10000 points (no weight decay, which would bias the linear map)."""
    cfg = make_cfg("dataset=gaussian", "dataset.mean=[1.0,-1.0]", "dataset.scale=[1.5,0.5]",
                   "dataset.n_samples=10000", "model.hidden=[]", "loss=ism", "sigma=0.1", "steps=1500",
                   "noise_samples=1", "optimizer.lr=1e-2", "optimizer.weight_decay=0", "eval_every=250",
                   "eval_samples=4000")
    trainer.run(cfg, tmp_path / "run")
    m = metrics_file.read_metrics(tmp_path / "run" / "metrics.csv")
    esm = m["esm"][np.isfinite(m["esm"])]
    assert esm[0] > 1.0
    assert esm[-1] < 2e-3


def test_run_logs_esm_every_eval_every_steps(tmp_path):
    cfg = make_cfg(*TINY, "steps=9", "eval_every=4", "loss=ism", "sigma=0.02")
    trainer.run(cfg, tmp_path / "run")
    m = metrics_file.read_metrics(tmp_path / "run" / "metrics.csv")
    evaluated = [int(s) for s in m["step"] if np.isfinite(m["esm"][s])]
    assert evaluated == [0, 4, 8]
    for name in ("esm", "esm_data", "esm_emp"):
        assert np.isfinite(m[name][evaluated]).all() and np.isnan(m[name][[1, 2, 3, 5]]).all()
    summary = artifacts.read_summary(tmp_path / "run")
    assert summary["final"]["esm"] == pytest.approx(m["esm"][-1])


def test_clean_data_run_has_esm_equal_esm_data_and_no_empirical_reference(tmp_path):
    trainer.run(make_cfg(*TINY, "loss=ism", "sigma=0"), tmp_path / "run")
    m = metrics_file.read_metrics(tmp_path / "run" / "metrics.csv")
    assert m["esm"][0] == pytest.approx(m["esm_data"][0], rel=1e-12)
    assert np.isnan(m["esm_emp"]).all()


def test_score_field_carries_the_reference_on_the_same_grid(tmp_path):
    cfg = make_cfg(*TINY, "grid_size=7", "sigma=0.03")
    trainer.run(cfg, tmp_path / "run")
    field = np.load(tmp_path / "run" / "score_field.npz")
    i, j = 1, 5
    point = np.array([[field["grid_x"][j], field["grid_y"][i]]])
    expected = reference_score(load_dataset("half_moon"), point, 0.03)
    np.testing.assert_allclose(field["reference"][i, j], expected[0], rtol=1e-10)
    assert field["reference"].shape == field["score"].shape
