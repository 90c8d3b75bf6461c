"""Exact divergence kernels: the Kernel protocol (base.py), one module per kernel and select.py, the only
module that imports every kernel (make_kernel)."""
