"""The exact divergence and its parameter gradients against brute-force autograd (float64)."""

import pytest
import torch

from dsmexp.core.kernels.chain import ChainKernel
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.kernels.tangent import TangentKernel
from dsmexp.core.kernels.two_layer import TwoLayerKernel
from dsmexp.core.networks import ACTIVATIONS, ScoreMLP


def brute_force_divergence(model: ScoreMLP, z: torch.Tensor) -> torch.Tensor:
    """Trace of the full Jacobian, one autograd.grad call per output dimension (the slow reference)."""
    z = z.clone().requires_grad_(True)
    s = model(z)
    rows = [torch.autograd.grad(s[:, i].sum(), z, retain_graph=True)[0][:, i] for i in range(z.shape[1])]
    return torch.stack(rows).sum(0)


def brute_force_grads(model: ScoreMLP, z: torch.Tensor, c: torch.Tensor) -> list[torch.Tensor]:
    """d/dtheta of sum_points [0.5 |s|^2 + <s, c> + div s] by autograd through the brute-force trace."""
    zz = z.clone().requires_grad_(True)
    s = model(zz)
    div = sum(torch.autograd.grad(s[:, i].sum(), zz, create_graph=True)[0][:, i] for i in range(z.shape[1]))
    objective = (0.5 * (s * s).sum(1) + (s * c).sum(1) + div).sum()
    return list(torch.autograd.grad(objective, list(model.parameters())))


def random_model(dim: int, hidden: list[int], activation: str, seed: int) -> ScoreMLP:
    torch.manual_seed(seed)
    model = ScoreMLP(dim, hidden, activation).double()
    with torch.no_grad():  # larger weights than the default init, so every nonlinearity matters
        for p in model.parameters():
            p.mul_(2.0)
    return model


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("hidden", [[16, 32], [7], [6, 5, 4], []])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_exact_divergence_matches_brute_force_jacobian(dim, hidden, activation):
    model = random_model(dim, hidden, activation, seed=dim + len(hidden))
    z = 1.5 * torch.randn(300, dim, dtype=torch.float64)
    fwd = make_kernel(model).forward(z.T.contiguous())
    expected = brute_force_divergence(model, z)
    torch.testing.assert_close(fwd.div.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fwd.s.detach(), model(z).detach().T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kernel_type", [TwoLayerKernel, TangentKernel, ChainKernel])
def test_kernel_gradients_match_autograd(dim, activation, kernel_type):
    model = random_model(dim, [9, 11], activation, seed=7)
    z = torch.randn(200, dim, dtype=torch.float64)
    c = torch.randn(200, dim, dtype=torch.float64)
    kernel = kernel_type(model)
    fwd = kernel.forward(z.T.contiguous())
    s = fwd.s.detach()
    # row 0: 0.5|s|^2 + <s, c> + div; row 1: <s, c> only
    s_bar = torch.stack([s + c.T, c.T])
    grads = kernel.backward(fwd, s_bar, div_row=0)
    for got, want in zip(grads, brute_force_grads(model, z, c)):
        torch.testing.assert_close(got[0], want, rtol=1e-10, atol=1e-10)
    zz = z.clone()
    only_c = torch.autograd.grad((model(zz) * c).sum(), list(model.parameters()))
    for got, want in zip(grads, only_c):
        torch.testing.assert_close(got[1], want, rtol=1e-10, atol=1e-10)


def test_fast_kernel_is_chosen_for_every_depth():
    assert isinstance(make_kernel(ScoreMLP(2, [16, 32], "tanh")), TwoLayerKernel)
    for hidden in ([16], [16, 32, 32], []):
        assert isinstance(make_kernel(ScoreMLP(2, hidden, "tanh")), ChainKernel)


@pytest.mark.parametrize("hidden", [[], [7], [9, 11], [6, 5, 4], [16, 32, 32, 8]])
@pytest.mark.parametrize("activation", ["tanh", "silu"])
def test_chain_kernel_matches_the_tangent_reference(hidden, activation):
    """Tr(B T_{L-1}) with n_1 columns equals the d-column tangent trace, values and both gradients."""
    dim = 6
    model = random_model(dim, hidden, activation, seed=len(hidden))
    z = torch.randn(120, dim, dtype=torch.float64).T.contiguous()
    c = torch.randn(dim, 120, dtype=torch.float64)
    chain, tangent = ChainKernel(model), TangentKernel(model)
    fc, ft = chain.forward(z), tangent.forward(z)
    torch.testing.assert_close(fc.div.detach(), ft.div.detach(), rtol=1e-12, atol=1e-12)
    s_bar = torch.stack([fc.s.detach() + c, c])
    for got, want in zip(chain.backward(fc, s_bar, 0), tangent.backward(ft, s_bar, 0)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_slope_and_curvature_match_autograd(name):
    act = ACTIVATIONS[name]
    h = torch.linspace(-4, 4, 101, dtype=torch.float64, requires_grad=True)
    a = act.fn(h)
    d1 = torch.autograd.grad(a.sum(), h, create_graph=True)[0]
    d2 = torch.autograd.grad(d1.sum(), h)[0]
    torch.testing.assert_close(act.slope(h, a).detach(), d1.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(act.curvature(h, a).detach(), d2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", ["ssm", "ssm_vr"])
def test_hand_written_sliced_pass_matches_autograd(activation, loss):
    """The two-layer kernel's v^T J v and its reverse pass equal autograd through forward-mode tangents."""
    from dsmexp.core.objectives.registry import objective

    model = random_model(4, [9, 11], activation, seed=3)
    z = torch.randn(4, 150, dtype=torch.float64)
    v = torch.randn(3, 4, 150, dtype=torch.float64)
    fast, reference = TwoLayerKernel(model), ChainKernel(model)  # ChainKernel: the autograd path
    got, want = objective(loss).terms(fast, z, v, 0.1), objective(loss).terms(reference, z, v, 0.1)
    torch.testing.assert_close(got.fit, want.fit, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.norm, want.norm, rtol=1e-12, atol=1e-12)
    for a, b in zip(got.grad, want.grad):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)
