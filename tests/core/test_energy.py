"""Energy models (model.parametrization=energy, networks.EnergyMLP) with real numbers: the sign convention
p proportional to exp(-E) on a quadratic energy (a Gaussian's score, Hessian and normaliser), the ISM
loss and gradient against a brute-force Hessian trace by autograd, DSM-S's double backward pass, the
curl of free-form and conservative fields, and the grid normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsmexp.core.conditioning import ConditionalEnergyMLP, NoiseConditional
from dsmexp.core.energy import grid_box, grid_log_partition
from dsmexp.core.evaluation import curl
from dsmexp.core.kernels.conditional import ConditionalKernel
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import EnergyMLP, ScoreMLP
from dsmexp.core.objectives.levels import multiscale_terms
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS

pytestmark = pytest.mark.timeout(120)

A = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
MU = torch.tensor([0.3, -0.5], dtype=torch.float64)


class Quadratic(EnergyMLP):
    """E(z) = 0.5 (z - mu)^T A (z - mu): p proportional to exp(-E) is N(mu, A^-1)."""

    def __init__(self) -> None:
        super().__init__(2, (), "tanh")
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def energy(self, z):
        c = z - MU
        return 0.5 * self.scale * torch.einsum("ni,ij,nj->n", c, A, c)


def test_a_quadratic_energy_is_a_gaussians_score_hessian_and_normaliser():
    """s = -A (z - mu), div s = -tr A, curl 0, and log Z = log(2 pi) - 0.5 log det A on a wide grid."""
    model = Quadratic()
    z = torch.randn(50, 2, dtype=torch.float64)
    torch.testing.assert_close(model(z), -(z - MU) @ A, rtol=1e-12, atol=1e-12)
    fwd = make_kernel(model).forward(z.T.contiguous())
    torch.testing.assert_close(fwd.div, torch.full((50,), -float(torch.trace(A)), dtype=torch.float64))
    assert curl(model, z).abs().max() < 1e-12
    log_z = grid_log_partition(model.energy, MU - 12, MU + 12, size=512)
    exact = math.log(2 * math.pi) - 0.5 * math.log(float(torch.det(A)))
    assert float(log_z) == pytest.approx(exact, abs=1e-9)
    lo, hi = grid_box(z)
    assert (lo < z.min(0).values).all() and (hi > z.max(0).values).all()


def _brute_force(model: EnergyMLP, z: torch.Tensor, eps: torch.Tensor, sigma: float):
    """ISM and DSM-S losses by autograd alone: grad E and its Hessian trace per point (create_graph)."""
    z = z.clone().requires_grad_(True)
    grad = torch.autograd.grad(model.energy(z).sum(), z, create_graph=True)[0]
    trace = sum(torch.autograd.grad(grad[:, i].sum(), z, create_graph=True)[0][:, i] for i in range(2))
    s = -grad
    norm = 0.5 * (s * s).sum(1)
    ism = (norm - trace).mean()
    dsm_s = (norm + (s * eps).sum(1) / sigma).mean()
    return ism, dsm_s


@pytest.mark.parametrize("activation, hidden", [("tanh", (16, 32)), ("softplus", (8,)), ("silu", (6, 5, 4))])
def test_the_ism_and_dsm_terms_and_gradients_are_autograds_brute_force(activation, hidden):
    """loss_ism = mean 0.5 |grad E|^2 - Laplacian E and loss_dsm_s, with their parameter gradients, equal
    the losses written with autograd's Hessian trace (float64, 1e-10)."""
    torch.manual_seed(0)
    model = EnergyMLP(2, hidden, activation).double()
    n, m, sigma = 40, 3, 0.1
    x = torch.randn(n, 2, dtype=torch.float64)
    eps = torch.randn(m, n, 2, dtype=torch.float64)
    z = (x[None] + sigma * eps).reshape(-1, 2)
    ism, dsm_s = _brute_force(model, z, eps.reshape(-1, 2), sigma)
    kernel = make_kernel(model)
    for loss, want in (("ism", ism), ("dsm_s", dsm_s)):
        terms = step_terms(kernel, x, eps, sigma, loss)
        row = dict(zip(METRICS, terms.metrics.tolist()))
        assert row[f"loss_{loss}"] == pytest.approx(want.item(), rel=1e-10)
        wanted = torch.autograd.grad(want, list(model.parameters()), retain_graph=True)
        for got, ref in zip(terms.grad, wanted):
            torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_a_free_form_field_has_a_curl_and_an_energy_field_has_none():
    torch.manual_seed(1)
    z = torch.randn(200, 2)
    free, conservative = ScoreMLP(2, (16, 32), "tanh"), EnergyMLP(2, (16, 32), "tanh")
    assert float(curl(free, z).abs().mean()) > 1e-2
    assert float(curl(conservative, z).abs().mean()) < 1e-6
    # the Jacobian of -grad E is symmetric: the curl is its antisymmetric part, checked by autograd
    jac = torch.autograd.functional.jacobian(lambda p: free(p[None])[0], z[0])
    assert float(curl(free, z[:1])[0]) == pytest.approx(float(jac[1, 0] - jac[0, 1]), rel=1e-4)


def test_grid_normalisation_gives_the_exact_log_likelihood_of_a_gaussian():
    """For the quadratic energy of N(mu, A^-1), loglik on its own samples is the Gaussian's mean log
    density and KL is 0, within the grid's truncation (the box reaches 25% beyond the points)."""
    model = Quadratic()
    gen = np.random.default_rng(0)
    cov = np.linalg.inv(A.numpy())
    z = torch.as_tensor(gen.multivariate_normal(MU.numpy(), cov, 4000))
    lo, hi = grid_box(z)
    log_p = -model.energy(z) - grid_log_partition(model.energy, lo, hi)
    exact = -model.energy(z) - (math.log(2 * math.pi) - 0.5 * math.log(float(torch.det(A))))
    assert float((exact - log_p).abs().max().detach()) < 1e-3


def test_a_noise_conditional_energy_has_its_exact_laplacian_at_every_level():
    """Across a schedule (model.parametrization=energy with experiment=multiscale): ISM's loss and
    gradient for E(z, sigma) equal autograd's brute-force 0.5 |grad_z E|^2 - Laplacian_z E (1e-10), each
    point at its own sigma."""
    torch.manual_seed(0)
    net = ConditionalEnergyMLP(2, (8, 8), "tanh").double()
    model = NoiseConditional(net, "score")
    x = torch.randn(30, 2, dtype=torch.float64)
    eps = torch.randn(2, 60, dtype=torch.float64)
    level = torch.arange(60) % 3
    sigma = torch.tensor([0.05, 0.2, 1.0], dtype=torch.float64)[level]
    ones = torch.ones(60, dtype=torch.float64)  # weighting none
    terms = multiscale_terms(ConditionalKernel(model), x, eps, sigma, level, ones, 3, "ism")
    z = (x.repeat(2, 1) + sigma[:, None] * eps.T).requires_grad_(True)
    grad = torch.autograd.grad(net.energy(z, sigma).sum(), z, create_graph=True)[0]
    trace = sum(torch.autograd.grad(grad[:, i].sum(), z, create_graph=True)[0][:, i] for i in range(2))
    want = (0.5 * (grad * grad).sum(1) - trace).mean()
    assert dict(zip(METRICS, terms.metrics.tolist()))["loss_ism"] == pytest.approx(want.item(), rel=1e-10)
    for got, ref in zip(terms.grad, torch.autograd.grad(want, list(model.parameters()))):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)
