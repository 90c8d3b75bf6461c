"""The score network s_theta: R^d -> R^d (an MLP) and its activations with their first two derivatives."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, func, nn


@dataclass(frozen=True)
class Activation:
    """phi with phi' and phi'' as functions of (h, a = phi(h)); the ISM gradient needs phi''.

    `backprop(c, row, h, a, d, u)` is the reverse pass through the activation for k stacked cotangents
    c (k, width, n): c <- phi'(h) * c, plus phi''(h) * u in the row that carries the divergence;
    `backprop_rows(c, {row: u}, h, a, d)` the same with any number of such rows, each with its own u.
    tanh does it without forming phi'' (tanh'' = -2 a tanh').
    """

    fn: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor, Tensor], Tensor]
    curvature: Callable[[Tensor, Tensor], Tensor]
    uses_preactivation: bool = True
    curvature_over_slope_is_minus_2a: bool = False

    def backprop(self, c: Tensor, row: int | None, h: Tensor | None, a: Tensor, d: Tensor, u: Tensor) -> None:
        self.backprop_rows(c, {} if row is None else {row: u}, h, a, d)

    def backprop_rows(self, c: Tensor, rows: dict[int, Tensor], h: Tensor | None, a: Tensor,
                      d: Tensor) -> None:
        if self.curvature_over_slope_is_minus_2a:
            for row, u in rows.items():
                c[row].addcmul_(a, u, value=-2)
            c.mul_(d)
            return
        c.mul_(d)
        if rows:
            curvature = self.curvature(h, a)
            for row, u in rows.items():
                c[row].addcmul_(curvature, u)


def _sigmoid_slope(h: Tensor, a: Tensor) -> Tensor:
    return a * (1 - a)


def _silu_slope(h: Tensor, a: Tensor) -> Tensor:
    g = torch.sigmoid(h)
    return g * (1 + h * (1 - g))


def _silu_curvature(h: Tensor, a: Tensor) -> Tensor:
    g = torch.sigmoid(h)
    return g * (1 - g) * (2 + h * (1 - 2 * g))


def _softplus_curvature(h: Tensor, a: Tensor) -> Tensor:
    g = torch.sigmoid(h)
    return g * (1 - g)


ACTIVATIONS: dict[str, Activation] = {
    # tanh' = 1 - a^2 and tanh'' = -2 a tanh', so phi' c + phi'' u = (c - 2 a u) phi'
    "tanh": Activation(torch.tanh, lambda h, a: torch.addcmul(a.new_ones(()), a, a, value=-1),
                       lambda h, a: -2 * a * (1 - a * a), uses_preactivation=False,
                       curvature_over_slope_is_minus_2a=True),
    "sigmoid": Activation(torch.sigmoid, _sigmoid_slope, lambda h, a: a * (1 - a) * (1 - 2 * a),
                          uses_preactivation=False),
    "softplus": Activation(nn.functional.softplus, lambda h, a: torch.sigmoid(h), _softplus_curvature),
    "silu": Activation(nn.functional.silu, _silu_slope, _silu_curvature),
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


class EnergyMLP(nn.Module):
    """An energy E: MLP d -> hidden... -> 1 with a smooth activation after every hidden layer; p_model is
    proportional to exp(-E) and forward gives the score -grad_z E (model.parametrization=energy; seed
    003, energy-based DSM). The score is a gradient field (its 2-D curl is zero) with Jacobian -Hess E, so
    ISM's div s (Eq. 8) is -Laplacian E: exact, by one forward-mode pass per coordinate over this reverse
    pass (the torch.func kernel, kernels/module.py); DSM's gradient is a double backward pass."""

    def __init__(self, dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        widths = [dim, *hidden]  # the output has no bias: a constant in E changes neither s nor p_model
        self.layers = nn.ModuleList([*(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])),
                                     nn.Linear(widths[-1], 1, bias=False)])
        self.dim, self.hidden, self.activation_name = dim, tuple(hidden), activation
        self.activation = ACTIVATIONS[activation]

    def energy(self, z: Tensor) -> Tensor:
        """E(z) (n,) at points z (n, d)."""
        for layer in self.layers[:-1]:
            z = self.activation.fn(layer(z))
        return self.layers[-1](z)[:, 0]

    def forward(self, z: Tensor) -> Tensor:
        """The score -grad_z E (n, d): the points are independent, so the gradient of the summed energy
        is each point's own (torch.func, so that forward-mode passes compose with it)."""
        return -func.grad(lambda points: self.energy(points).sum())(z)


class CustomModelError(ValueError):
    """A model=custom setting that cannot give a score network (one line naming model.target)."""


def build_custom(target: str, kwargs: dict, dim: int, check: bool = False,
                 conditional: bool = False) -> nn.Module:
    """target(**kwargs) for a dotted path `package.module.Class` to a torch nn.Module subclass.

    `dim` is passed as the keyword `dim` when the constructor takes one and kwargs does not set it.
    check=True also requires a trainable parameter and calls the module on a few points and on subsets
    of them (odd sizes, a single point): each must give (n, dim) scores, row by row the same. A
    conditional module (trained across a noise schedule) is called as module(z (n, d), sigma (n, 1)).
    """
    module_name, _, attr = target.rpartition(".")
    if not module_name:
        raise CustomModelError(f"model.target={target}: must be a dotted path package.module.Class")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CustomModelError(f"model.target={target}: cannot be imported ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CustomModelError(f"model.target={target}: is not a torch nn.Module class")
    kwargs = dict(kwargs)
    try:
        if "dim" not in kwargs and "dim" in inspect.signature(cls).parameters:
            kwargs["dim"] = dim
    except (TypeError, ValueError):  # no introspectable signature
        pass
    try:
        model = cls(**kwargs)
    except Exception as err:
        raise CustomModelError(f"model.target={target}: building it with model.kwargs={kwargs} failed "
                               f"({type(err).__name__}: {err})".splitlines()[0]) from None
    if check:
        _check_output(model, target, dim, conditional)
    return model


PROBE_POINTS = 9  # the batch the config check calls a custom model on
PROBE_SUBSETS = (3, 7, 1)  # its leading rows, called alone: odd sizes and a single point


def _check_output(model: nn.Module, target: str, dim: int, conditional: bool = False) -> None:
    """A custom model must have a trainable parameter, map (n, d) to (n, d) for any n, and give each
    point a score that depends on that point alone (the objectives call it on chunks of points)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise CustomModelError(f"model.target={target}: has no trainable parameters; a score model needs "
                               "at least one for the optimiser to train")
    points = torch.randn(PROBE_POINTS, dim, generator=torch.Generator().manual_seed(0))
    first = _probe(model, points[:PROBE_SUBSETS[0]], target, conditional)
    full = _probe(model, points, target, conditional)
    scale = 1 + float(full.nan_to_num(0, 0, 0).abs().max())
    for n in PROBE_SUBSETS:
        part = first if n == PROBE_SUBSETS[0] else _probe(model, points[:n], target, conditional)
        if not torch.allclose(part, full[:n], rtol=1e-4, atol=1e-4 * scale, equal_nan=True):
            raise CustomModelError(
                f"model.target={target}: the score of a point changes with the other points it is called "
                f"with (its first {n} of {PROBE_POINTS} points alone give other rows; batch statistics as in "
                "BatchNorm in training mode, or randomness as in dropout, do this); the objectives call "
                "the model on chunks of points, so each score must depend on its own point only")


def _probe(model: nn.Module, points: Tensor, target: str, conditional: bool = False) -> Tensor:
    """model(points) (and sigma = 0.1 for a conditional one) as float64, or CustomModelError when it
    raises or gives another shape than points."""
    n, dim = points.shape
    try:
        with torch.no_grad():
            out = model(points, torch.full((n, 1), 0.1)) if conditional else model(points)
    except Exception as err:
        raise CustomModelError(f"model.target={target}: calling it on ({n}, {dim}) points failed "
                               f"({type(err).__name__}: {err})".splitlines()[0]) from None
    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    if shape != (n, dim):
        raise CustomModelError(f"model.target={target}: returns {shape} for ({n}, {dim}) points; a score "
                               f"model must map (n, d) points to (n, d) scores")
    return out.detach().double()


# model=NAME -> its builder from the model config group and the data dimension
MODELS = {"mlp": lambda cfg, dim: (EnergyMLP if cfg.get("parametrization") == "energy" else ScoreMLP)(
              dim, list(cfg.hidden), cfg.activation),
          "custom": lambda cfg, dim: build_custom(cfg.target, dict(cfg.kwargs), dim)}


def build_model(cfg, dim: int) -> nn.Module:
    """The score network a run's model config asks for: ScoreMLP, EnergyMLP (model.parametrization=energy),
    or any nn.Module (model=custom)."""
    return MODELS[cfg.name](cfg, dim)

