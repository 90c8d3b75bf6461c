"""Milliseconds per call of several steps timed side by side with torch.utils.benchmark (the study's
Figure 5 and `dsmexp-bench`).

The calls are interleaved, one of each in turn, so machine load that drifts while they are timed (other
processes on a shared machine) hits every variant alike; each call is one torch.utils.benchmark
measurement (which synchronises a GPU around it), and a variant's measurements are merged into one
Measurement. Its median is the reported time; the quartiles say how far timing noise reaches, so two
medians whose interquartile ranges overlap are not told apart.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np
import torch
from torch.utils.benchmark import Measurement, Timer


def time_interleaved(variants: dict[Hashable, Callable[[], object]], repeats: int,
                     warmup: int) -> dict[Hashable, Measurement]:
    """`warmup` untimed calls of each variant, then `repeats` rounds of one timed call of each in turn."""
    threads = torch.get_num_threads()  # Timer would otherwise time on one thread
    timers = {name: Timer("call()", globals={"call": call}, label=str(name), num_threads=threads)
              for name, call in variants.items()}
    for call in variants.values():
        for _ in range(warmup):
            call()
    measured: dict[Hashable, list[Measurement]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, timer in timers.items():
            measured[name].append(timer.timeit(1))
    return {name: Measurement.merge(parts)[0] for name, parts in measured.items()}


def summary_ms(measurement: Measurement) -> dict[str, float]:
    """Median, quartiles, min and max of one variant's calls, in milliseconds."""
    ms = 1e3 * np.asarray(measurement.times)
    q1, median, q3 = np.percentile(ms, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "min": float(ms.min()),
            "max": float(ms.max())}
