"""The score network s_theta: R^d -> R^d (an MLP) and its activations with their first two derivatives."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Activation:
    """phi, and (h, a = phi(h)) -> (phi'(h), phi''(h)); the ISM gradient needs phi''."""

    fn: Callable[[Tensor], Tensor]
    derivatives: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _tanh_derivatives(h: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    d1 = 1 - a * a
    return d1, -2 * a * d1


def _sigmoid_derivatives(h: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    d1 = a * (1 - a)
    return d1, d1 * (1 - 2 * a)


def _softplus_derivatives(h: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    g = torch.sigmoid(h)
    return g, g * (1 - g)


def _silu_derivatives(h: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    g = torch.sigmoid(h)
    return g * (1 + h * (1 - g)), g * (1 - g) * (2 + h * (1 - 2 * g))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(torch.tanh, _tanh_derivatives),
    "sigmoid": Activation(torch.sigmoid, _sigmoid_derivatives),
    "softplus": Activation(nn.functional.softplus, _softplus_derivatives),
    "silu": Activation(nn.functional.silu, _silu_derivatives),
}


class ScoreMLP(nn.Module):
    """MLP d -> hidden... -> d with a smooth activation after every hidden layer and a linear output.

    hidden=() is the linear score model s(z) = W z + b, exact for Gaussian data.
    """

    def __init__(self, dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        widths = [dim, *hidden, dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dim, self.hidden, self.activation_name = dim, tuple(hidden), activation
        self.activation = ACTIVATIONS[activation]

    def forward(self, z: Tensor) -> Tensor:
        """The score at points z of shape (n, d)."""
        for layer in self.layers[:-1]:
            z = self.activation.fn(layer(z))
        return self.layers[-1](z)
