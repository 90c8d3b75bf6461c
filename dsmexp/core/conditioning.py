"""Noise-conditional score networks s(z, sigma) (seed 003, NCSN) and what their output means.

The network f(z, sigma) sees the point and its noise scale (EMBEDDINGS: log sigma as one input, or
Fourier features of log sigma); PARAMETRIZATIONS turn its output into the score, always the same object
(the one every term and metric reads):

- score: s = f (optionally f / sigma, model.scale_output: the score of q_sigma grows like 1/sigma);
- noise: f predicts eps and s = -f / sigma (DDPM's eps-prediction; seed 003, DSM Is DDPM Training);
- data:  f predicts x0 and s = (f - z) / sigma^2 (Tweedie's formula, E[x | z] = z + sigma^2 grad log q);
- energy: the network is an energy E(z, sigma) and s = -grad_z E (ConditionalEnergyMLP; as score, f = s).

Each is s = a(sigma) f + b(sigma) z with per-point scalars a, b, so div s = a div f + b d and the
kernel (kernels/conditional.py) needs f's divergence only. A user's module (model=custom) is any
nn.Module with forward(z (n, d), sigma (n, 1)) -> (n, d).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, func, nn

from dsmexp.core.networks import ACTIVATIONS, build_custom

EMBEDDINGS = ("log", "fourier")


def _score(sigma: Tensor) -> tuple[Tensor, Tensor]:
    return torch.ones_like(sigma), torch.zeros_like(sigma)


def _noise(sigma: Tensor) -> tuple[Tensor, Tensor]:
    return -1 / sigma, torch.zeros_like(sigma)


def _data(sigma: Tensor) -> tuple[Tensor, Tensor]:
    inverse = 1 / (sigma * sigma)
    return inverse, -inverse


# name -> sigma (n,) -> (a, b): s = a f + b z
PARAMETRIZATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "score": _score, "noise": _noise, "data": _data}


class ConditionalMLP(nn.Module):
    """MLP on [z, embedding(sigma)] -> hidden... -> d, smooth activations, linear output; with
    scale_output the output is divided by sigma."""

    def __init__(self, dim: int, hidden: Sequence[int], activation: str, embedding: str = "log",
                 fourier_features: int = 16, scale_output: bool = False) -> None:
        super().__init__()
        self.dim, self.hidden, self.embedding, self.scale_output = dim, tuple(hidden), embedding, scale_output
        features = 1 if embedding == "log" else 2 * (fourier_features // 2)
        # fixed random frequencies of log sigma (drawn with the initialisation), not trained
        self.register_buffer("frequencies", torch.randn(features // 2) if embedding == "fourier" else
                             torch.zeros(0))
        widths = [dim + features, *hidden, dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = ACTIVATIONS[activation]

    def embed(self, sigma: Tensor) -> Tensor:
        """(n, features) for sigma (n,)."""
        log_sigma = torch.log(sigma)[:, None]
        if self.embedding == "log":
            return log_sigma
        angle = 2 * math.pi * log_sigma * self.frequencies[None]
        return torch.cat([torch.sin(angle), torch.cos(angle)], 1)

    def forward(self, z: Tensor, sigma: Tensor) -> Tensor:
        """f at points z (n, d) with noise scales sigma (n,) or (n, 1)."""
        sigma = sigma.reshape(-1).to(z.dtype)
        a = torch.cat([z, self.embed(sigma)], 1)
        for layer in self.layers[:-1]:
            a = self.activation.fn(layer(a))
        out = self.layers[-1](a)
        return out / sigma[:, None] if self.scale_output else out


class ConditionalEnergyMLP(nn.Module):
    """A noise-conditional energy E(z, sigma): ConditionalMLP's layers with a 1-wide output without bias;
    forward(z (n, d), sigma (n, 1)) gives the score -grad_z E (model.parametrization=energy across a
    schedule). The kernel treats it as a user's module (torch.func): div s = -Laplacian_z E exactly."""

    def __init__(self, dim: int, hidden: Sequence[int], activation: str, embedding: str = "log",
                 fourier_features: int = 16) -> None:
        super().__init__()
        self.trunk = ConditionalMLP(dim, hidden, activation, embedding, fourier_features)
        self.trunk.layers[-1] = nn.Linear(self.trunk.layers[-1].in_features, 1, bias=False)
        self.dim = dim

    def energy(self, z: Tensor, sigma: Tensor) -> Tensor:
        """E(z, sigma) (n,) for z (n, d) and sigma (n,) or (n, 1)."""
        return self.trunk(z, sigma)[:, 0]

    def forward(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -func.grad(lambda points: self.energy(points, sigma).sum())(z)


class NoiseConditional(nn.Module):
    """The score s(z, sigma) = a(sigma) net(z, sigma) + b(sigma) z of a network and a parametrization."""

    def __init__(self, net: nn.Module, parametrization: str = "score") -> None:
        super().__init__()
        self.net, self.parametrization = net, parametrization
        self.coefficients = PARAMETRIZATIONS[parametrization]

    def raw(self, z: Tensor, sigma: Tensor) -> Tensor:
        """net(z, sigma) for z (n, d), sigma (n,): ConditionalMLP takes (n,), a user's module (n, 1)."""
        return self.net(z, sigma if isinstance(self.net, ConditionalMLP) else sigma.reshape(-1, 1))

    def forward(self, z: Tensor, sigma: Tensor) -> Tensor:
        """The score at z (n, d), sigma (n,)."""
        sigma = sigma.reshape(-1).to(z.dtype)
        a, b = self.coefficients(sigma)
        return a[:, None] * self.raw(z, sigma) + b[:, None] * z


# model=NAME -> the network f(z, sigma) of a noise-conditional run (networks.MODELS for one sigma)
CONDITIONAL_MODELS = {
    "mlp": lambda cfg, dim: (
        ConditionalEnergyMLP(dim, list(cfg.hidden), cfg.activation, cfg.embedding, int(cfg.fourier_features))
        if cfg.get("parametrization") == "energy" else
        ConditionalMLP(dim, list(cfg.hidden), cfg.activation, cfg.embedding, int(cfg.fourier_features),
                       bool(cfg.scale_output))),
    "custom": lambda cfg, dim: build_custom(cfg.target, dict(cfg.kwargs), dim),
}


def build_conditional(cfg, dim: int) -> NoiseConditional:
    """The noise-conditional score a run's model config asks for, with its parametrization (an energy's
    network gives the score itself)."""
    parametrization = cfg.get("parametrization", "score")
    return NoiseConditional(CONDITIONAL_MODELS[cfg.name](cfg, dim),
                            "score" if parametrization == "energy" else parametrization)
