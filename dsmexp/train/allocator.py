"""Keep freed memory inside the process, so a training step's large temporaries do not page-fault.

A step on the torch path allocates and frees tensors of a few MB per chunk (at N = 1000, M = 50 and two
64-wide layers, each (64, 16384) float32 layer is 4 MB). glibc's malloc serves such blocks with mmap and
gives them back to the system when they are freed, so every step maps fresh pages and faults on each of
them; on a virtual machine each fault is expensive. Measured on the 2-core machine of the published
benchmarks (noise-conditional 64-64 network, one 16384-point chunk, 2 threads, load 0.5): the DSM
forward and backward took 19.5 ms with the default allocator and 11.7 ms with freed memory kept; ISM
28.5 and 17.0 ms.

keep_freed_memory raises the mmap threshold (blocks up to 1 GiB come from the heap, which is reused)
and the trim threshold (the heap is not shrunk after each step). The process's resident memory then
stays at its peak instead of falling between steps; the peak itself does not change. Only glibc has
mallopt; elsewhere nothing changes. DSMEXP_KEEP_FREED_MEMORY=0 turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # glibc before 2.35 refuses more than 32 MiB
TRIM_THRESHOLD = 1 << 30
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; True when they are set (see the module docstring)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("DSMEXP_KEEP_FREED_MEMORY", "1") == "0":
        return _done
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return _done
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if any(mallopt(M_MMAP_THRESHOLD, value) == 1 for value in MMAP_THRESHOLDS):
        _done = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _done
