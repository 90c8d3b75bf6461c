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


class BatchNormed(nn.Module):
    """Linear -> BatchNorm1d -> tanh -> Linear: in training mode each score depends on the whole batch."""

    def __init__(self, dim: int, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.BatchNorm1d(width), nn.Tanh(),
                                 nn.Linear(width, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PairsOnly(nn.Module):
    """Works on points two at a time (a reshape into pairs): fails for an odd number of points."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(2 * dim, 2 * dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z.reshape(-1, 2 * z.shape[1])).reshape(z.shape)


class SqueezesOnePoint(nn.Module):
    """Squeezes its output, so a single point comes back as a (d,) vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z).squeeze()


class LinearScore(nn.Module):
    """s(z) = -theta z with one scalar parameter: the model of the closed-form gradient-variance tests
    (tests/core/test_variance.py); for N(0, v I) data its DSM and TSM optimum is 1 / (v + sigma^2)."""

    def __init__(self, dim: int, theta: float = 0.7) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return -self.theta * z
