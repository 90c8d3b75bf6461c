"""make_kernel: the exact kernel for a network (the only module that imports every kernel)."""

from __future__ import annotations

from torch import nn

from dsmexp.core.kernels.base import Kernel
from dsmexp.core.kernels.chain import ChainKernel
from dsmexp.core.kernels.module import ModuleKernel
from dsmexp.core.kernels.two_layer import TwoLayerKernel
from dsmexp.core.networks import ScoreMLP


def make_kernel(model: nn.Module, compile: bool = False) -> Kernel:
    """The fastest exact kernel for this network: the hand-written bilinear form for two hidden layers
    (torch.compile'd when asked, two_layer.py), the chain-product trace for other depths (chain.py), and
    for any other nn.Module the torch.func kernel (module.py)."""
    if not isinstance(model, ScoreMLP):
        return ModuleKernel(model, compile)
    if len(model.hidden) == 2:
        return TwoLayerKernel(model, compile)
    return ChainKernel(model, compile)
