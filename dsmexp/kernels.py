"""make_kernel: the exact kernel for a network (the only module that imports every kernel)."""

from __future__ import annotations

from torch import nn

from dsmexp.chain_trace import ChainKernel
from dsmexp.divergence import Kernel, TwoLayerKernel
from dsmexp.models import ScoreMLP
from dsmexp.module_kernel import ModuleKernel


def make_kernel(model: nn.Module, compile: bool = False) -> Kernel | ChainKernel | ModuleKernel:
    """The fastest exact kernel for this network: the hand-written bilinear form for two hidden layers
    (torch.compile'd when asked), the chain-product trace of dsmexp/chain_trace.py for other depths, and
    for any other nn.Module the torch.func kernel of dsmexp/module_kernel.py."""
    if not isinstance(model, ScoreMLP):
        return ModuleKernel(model, compile)
    if len(model.hidden) == 2:
        return TwoLayerKernel(model, compile)
    return ChainKernel(model, compile)
