"""Score networks a user might bring with model=custom (imported by dotted path in the tests)."""

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """z -> tanh(W_in z) -> residual tanh blocks -> W_out: not a plain MLP, so the torch.func kernel runs."""

    def __init__(self, dim: int, width: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(blocks))
        self.out = nn.Linear(width, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(z))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h) - 0.1 * z


class NotAModule:
    def __init__(self, dim: int) -> None:
        self.dim = dim


class WrongShape(nn.Module):
    """Returns one number per point instead of a d-vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z)
