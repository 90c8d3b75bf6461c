"""Datasets in any dimension: embedded curves, Gaussian mixtures, rotated ill-conditioned Gaussians.

Their exact scores are checked against a finite difference of their log density and against an
independent computation; dim = 2 reproduces the numbers of the code before embedding existed.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import make_moons

from dsmexp.api import reference_divergence, reference_log_density, reference_score
from dsmexp.config import load_dataset, validate
from dsmexp.core.densities import curve_nodes, mixture_density
from dsmexp.errors import ConfigError
from dsmexp.records import identity, metrics_file
from dsmexp.train import trainer
from tests.conftest import TINY, make_cfg

MAIN_RUNS = Path(__file__).resolve().parents[1] / "data" / "dim2_main.json"


def finite_difference_score(ds, z: np.ndarray, sigma: float, h: float = 1e-5) -> np.ndarray:
    """Central differences of log q_sigma along every coordinate axis."""
    log_q = lambda points: reference_log_density(ds, points, sigma)  # noqa: E731
    cols = [(log_q(z + h * e) - log_q(z - h * e)) / (2 * h) for e in np.eye(z.shape[1])]
    return np.stack(cols, 1)


def noisy_points(ds, n: int, jitter: float) -> np.ndarray:
    x = ds.sample(n, seed=5)
    return x + jitter * np.random.default_rng(0).standard_normal(x.shape)


@pytest.mark.parametrize("name", ["half_moon", "swiss_roll"])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_embedded_curve_score_is_the_gradient_of_its_log_density(name, sigma):
    ds = load_dataset(name, dim=7, seed=3)
    z = noisy_points(ds, 12, 0.05)
    np.testing.assert_allclose(reference_score(ds, z, sigma), finite_difference_score(ds, z, sigma),
                               rtol=1e-6, atol=1e-4)


def test_embedded_density_is_the_curve_mixture_in_full_dimension():
    """The factorised density (2-D quadrature times a Gaussian across the plane) equals the same
    quadrature mixture evaluated directly in R^d with its nodes mapped into the plane."""
    ds, sigma = load_dataset("half_moon", dim=9, seed=1), 0.03
    z = noisy_points(ds, 30, 0.1)
    var = ds.noise**2 + sigma**2
    centres, log_weights = curve_nodes(ds.curves, math.sqrt(var))
    log_q, score, div = mixture_density(z, centres @ ds.basis.T, log_weights, var)
    np.testing.assert_allclose(reference_log_density(ds, z, sigma), log_q, rtol=1e-10)
    np.testing.assert_allclose(reference_score(ds, z, sigma), score, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(reference_divergence(ds, z, sigma), div, rtol=1e-8)


def test_embedded_sample_is_the_curve_in_a_plane_with_isotropic_blur():
    ds = load_dataset("half_moon", dim=64, seed=4)
    assert ds.basis.shape == (64, 2)
    np.testing.assert_allclose(ds.basis.T @ ds.basis, np.eye(2), atol=1e-12)
    x = ds.sample(20000, seed=8)
    plane = x @ ds.basis
    perp = x - plane @ ds.basis.T
    # in the plane: make_moons itself; across it: N(0, noise^2) in each of the 62 directions
    np.testing.assert_allclose(plane, ds.sample_plane(20000, 8), rtol=1e-12, atol=1e-12)
    assert (perp**2).sum(1).mean() / 62 == pytest.approx(ds.noise**2, rel=0.01)
    # the plane comes from the seed: the same seed gives the same plane, another seed another one
    np.testing.assert_array_equal(load_dataset("half_moon", dim=64, seed=4).basis, ds.basis)
    assert np.abs(load_dataset("half_moon", dim=64, seed=5).basis - ds.basis).max() > 0.1


def test_dim_2_is_the_data_in_its_own_coordinates():
    ds = load_dataset("half_moon", dim=2, seed=9)
    assert ds.basis is None
    np.testing.assert_array_equal(ds.sample(300, seed=2), make_moons(300, noise=0.05, random_state=2)[0])


@pytest.mark.parametrize("case", ["half_moon_ism", "swiss_roll_dsm_s", "half_moon_ism_clean"])
def test_dim_2_runs_reproduce_the_numbers_from_before_embedding(case, tmp_path):
    """tests/data/dim2_main.json holds float64, one-thread runs made with the code before this change."""
    recorded = json.loads(MAIN_RUNS.read_text())
    cfg = make_cfg(*recorded["common"], *recorded["cases"][case]["overrides"])
    trainer.run(cfg, tmp_path / "run", threads=1)
    m = metrics_file.read_metrics(tmp_path / "run" / "metrics.csv")
    for column, values in recorded["cases"][case]["metrics"].items():
        expected = np.array([math.nan if v is None else v for v in values])
        np.testing.assert_allclose(m[column], expected, rtol=1e-10, atol=1e-12, err_msg=column)


def test_gmm_score_is_the_gradient_of_its_log_density_and_the_closed_form():
    ds = load_dataset("gmm", dim=5, components=4, scale=[0.3, 0.5, 0.8, 1.0], weights=[1, 2, 3, 4], seed=2)
    z = noisy_points(ds, 25, 0.2)
    sigma = 0.1
    np.testing.assert_allclose(reference_score(ds, z, sigma), finite_difference_score(ds, z, sigma),
                               rtol=1e-6, atol=1e-5)
    density = sum(w * multivariate_normal(mu, (s**2 + sigma**2) * np.eye(5)).pdf(z)
                  for w, mu, s in zip(ds.weights, ds.means, ds.scales))
    np.testing.assert_allclose(reference_log_density(ds, z, sigma), np.log(density), rtol=1e-10)
    assert ds.weights == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_gmm_samples_follow_the_weights_and_the_component_scales():
    ds = load_dataset("gmm", dim=40, components=3, spread=10.0, scale=[0.1, 0.5, 1.0], weights=[1, 1, 2],
                      seed=1)
    x = ds.sample(40000, seed=3)
    nearest = ((x[:, None, :] - ds.means[None]) ** 2).sum(-1).argmin(1)  # components are 60+ apart
    assert np.bincount(nearest) / len(x) == pytest.approx([0.25, 0.25, 0.5], abs=0.01)
    for k, s in enumerate(ds.scales):
        spread = ((x[nearest == k] - ds.means[k]) ** 2).mean()
        assert spread == pytest.approx(s**2, rel=0.03)


def test_gaussian_rotation_and_condition_number():
    ds = load_dataset("gaussian", dim=6, scale=2.0, condition=100.0, rotate=True, seed=4)
    eig = np.linalg.eigvalsh(ds.cov)
    assert eig.max() / eig.min() == pytest.approx(100.0, rel=1e-10)
    np.testing.assert_allclose(np.sort(eig), np.sort(4.0 * 100.0 ** -np.linspace(0, 1, 6)), rtol=1e-10)
    assert np.abs(ds.cov - np.diag(np.diag(ds.cov))).max() > 0.1  # really rotated
    plain = load_dataset("gaussian", dim=6, scale=2.0, condition=100.0)
    np.testing.assert_allclose(plain.cov, np.diag(4.0 * 100.0 ** -np.linspace(0, 1, 6)), rtol=1e-12)
    z = np.random.default_rng(0).standard_normal((8, 6))
    expected = -z @ np.linalg.inv(ds.cov + 0.2**2 * np.eye(6))
    np.testing.assert_allclose(reference_score(ds, z, 0.2), expected, rtol=1e-10)
    x = ds.sample(50000, seed=1)
    np.testing.assert_allclose(np.cov(x.T), ds.cov, atol=0.06)


def test_defaults_keep_the_unrotated_gaussian():
    ds = load_dataset("gaussian", dim=3, scale=[1.0, 2.0, 3.0], seed=7)
    np.testing.assert_array_equal(ds.cov, np.diag([1.0, 4.0, 9.0]))


@pytest.mark.parametrize("overrides, message", [
    (["dataset.dim=1"], "dataset.dim=1: must be >= 2"),
    (["dataset=swiss_roll", "dataset.dim=0"], "dataset.dim=0: must be >= 2"),
    (["dataset=gmm", "dataset.components=0"], "dataset.components=0: must be >= 1"),
    (["dataset=gmm", "dataset.weights=[1,2]"], "dataset.weights=[1, 2]: must be null"),
    (["dataset=gmm", "dataset.components=2", "dataset.scale=[1,2,3]"], "dataset.scale=[1, 2, 3]: must be"),
    (["dataset=gmm", "dataset.dim=3", "dataset.components=2", "+dataset.means=[[0,0],[1,1]]"],
     "dataset.means: must be null"),
    (["dataset=gmm", "dataset.spread=-1"], "dataset.spread=-1.0: must be >= 0"),
    (["dataset=gaussian", "dataset.condition=0.5"], "dataset.condition=0.5: must be >= 1"),
    (["dataset=gaussian", "dataset.condition=10", "dataset.cov=[[1,0],[0,1]]"],
     "dataset.condition=10.0: applies to the diagonal"),
])
def test_bad_dataset_settings_fail_with_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_embedded_run_trains_and_logs_relative_esm(tmp_path):
    trainer.run(make_cfg(*TINY, "dataset.dim=16", "loss=ism", "sigma=0", "eval_every=5"), tmp_path / "run")
    m = metrics_file.read_metrics(tmp_path / "run" / "metrics.csv")
    seeds = trainer.Seeds.from_seed(0)
    ds = load_dataset("half_moon", dim=16, seed=seeds.data)
    x = ds.sample(2000, seed=int(np.random.SeedSequence(seeds.eval).generate_state(2)[0]))
    power = (reference_score(ds, x, 0.0) ** 2).sum(1).mean()
    assert m["esm_data_rel"][0] == pytest.approx(m["esm_data"][0] / power, rel=1e-9)
    assert m["esm_rel"][0] == pytest.approx(m["esm_data_rel"][0], rel=1e-12)  # sigma = 0: z = x
    assert 0.3 < m["esm_data_rel"][0] < 0.7  # a fresh network is near s = 0, which scores 0.5
    assert not (tmp_path / "run" / "score_field.npz").exists()


def test_runs_stored_before_dataset_dim_existed_stay_valid(tmp_path):
    cfg = make_cfg(*TINY, "loss=ism", "sigma=0")
    trainer.run(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    del summary["config"]["dataset"]["dim"]  # what a run written before the key existed holds
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    identity.check_existing_run(cfg, tmp_path / "run")  # the same run: no complaint
    with pytest.raises(ConfigError, match="dataset differ"):
        identity.check_existing_run(make_cfg(*TINY, "loss=ism", "sigma=0", "dataset.dim=8"), tmp_path / "run")
