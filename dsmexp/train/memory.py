"""Will a run fit in memory? An estimate from its settings, checked before anything is allocated.

memory_check counts the largest tensors a run holds at once, in bytes (float32 = 4, float64 = 8):

- the training data, N x d: the float64 sample and its copy in the run's dtype, plus the transient
  copies an embedded curve makes (basis products, the noise across its plane);
- per step, the noise eps and the noised points z, two M x N x d tensors (N x d at sigma = 0), and for
  ssm, ssm_vr and fd_ssm the K x d x M*N projections (Rademacher ones are drawn as int8 first);
- per chunk of chunk_size points (16384 on CPU, 2^20 on CUDA, or all M*N points when fewer): the
  network's saved activations and cotangents (hidden widths) and the float64 metric copies (d);
- the parameters, their stacked and averaged gradients, the optimiser state (two moments for adam and
  adamw, one for sgd with momentum) and, for two or more hidden layers, the weight products of the
  exact trace (n1 x n_last; W2 * (W1 W3)^T and its transpose for two);
- the held-out sample, eval_samples x d: x, z and three float64 reference scores, the reference
  computation's copies, and one forward pass over all of it;
- a Gaussian's d x d covariance with its Cholesky factor, inverse and (rotate=true) random rotation;
  a mixture's means and the reference's blocks; an embedded curve's d x 2 basis;
- the score field's grid_size^2 points through the network (2-D data).

A custom model's parameters are counted from the module the config check built; its activations are
not known, so they are counted as d-sized. The interpreter and libraries themselves are not counted.
Available memory is MemAvailable of /proc/meminfo (or the free pages os.sysconf reports), capped by a
cgroup v2 limit; on CUDA the device's tensors are compared with its free memory instead.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from dsmexp.config.dataset import DATASET_SCHEMAS
from dsmexp.core.kernels.module import TANGENT_VALUES
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.step import CPU_CHUNK, CUDA_CHUNK
from dsmexp.core.optimizers import OPTIMIZERS
from dsmexp.errors import ConfigError

log = logging.getLogger(__name__)

WARN_FRACTION = 0.5  # a run estimated above this share of the available memory is warned about
# what a key is compared with to say which one made a tensor large: the schema's defaults
DEFAULTS = {"noise_samples": 100, "dataset.n_samples": 1000, "dataset.dim": 2, "eval_samples": 2000,
            "projections": 1, "model.hidden": 32, "chunk_size": 16384, "grid_size": 64,
            "dataset.components": 8, "model.target": 1}
_warned: set[str] = set()


@dataclass
class Tensors:
    """One group of tensors: what it is, its size in bytes, where it lives and the keys that size it."""

    what: str
    nbytes: float
    on_device: bool
    keys: dict[str, float] = field(default_factory=dict)  # key -> its value relative to DEFAULTS

    def blamed_key(self) -> str:
        return max(self.keys, key=self.keys.get) if self.keys else "dataset.n_samples"


def _ratio(key: str, value: float) -> float:
    return value / DEFAULTS[key]


def estimate(cfg: DictConfig, custom_params: int | None = None) -> list[Tensors]:
    """The groups of tensors a run with these settings holds at its peak (see the module docstring)."""
    b = 8 if cfg.dtype == "float64" else 4
    ds = cfg.dataset
    n, d = int(ds.n_samples), int(ds.get("dim", 2))
    noisy = cfg.sigma > 0
    m = int(cfg.noise_samples) if noisy else 1
    if cfg.schedule.kind != "none":  # a multi-scale run: always noisy, sampling=all takes every level
        m = int(cfg.noise_samples) * (int(cfg.schedule.levels) if cfg.schedule.sampling == "all" else 1)
        noisy = True
    points = n * m
    cuda = _device(cfg) == "cuda"
    chunk = int(cfg.chunk_size or (CUDA_CHUNK if cuda else CPU_CHUNK))
    in_chunk = min(chunk, points)
    size_keys = {"dataset.n_samples": _ratio("dataset.n_samples", n), "dataset.dim": _ratio("dataset.dim", d)}
    noise_keys = size_keys | ({"noise_samples": _ratio("noise_samples", m)} if noisy else {})
    chunk_keys = {"chunk_size": _ratio("chunk_size", chunk)} if chunk < points else dict(noise_keys)
    chunk_keys["dataset.dim"] = _ratio("dataset.dim", d)
    custom = cfg.model.name == "custom"
    hidden = [] if custom else [int(h) for h in cfg.model.hidden]
    width_keys = {"model.hidden": _ratio("model.hidden", max(hidden, default=1))} if hidden else {}
    width = sum(hidden)
    groups = [
        Tensors("the training data (N x d)", n * d * (4 * 8 + b), False, dict(size_keys)),
        Tensors("the noise and noised points (2 x M x N x d)" if noisy else "the points (N x d)",
                2 * points * d * b, True, dict(noise_keys)),
        Tensors("the activations of one chunk",
                in_chunk * (8 * width * b + 6 * d * 8) + (4 * TANGENT_VALUES * b if custom else 0), True,
                chunk_keys | width_keys),
    ]
    if objective(cfg.loss.name).estimator:
        k = int(cfg.projections)
        per = b + (1 if cfg.projection == "rademacher" else 0)
        groups.append(Tensors("the projections (K x d x M x N)", k * d * points * per, True,
                              noise_keys | {"projections": _ratio("projections", k)}))
    groups.append(_parameters(cfg, d, hidden, b, custom_params))
    e = int(cfg.eval_samples)
    eval_keys = {"eval_samples": _ratio("eval_samples", e), "dataset.dim": _ratio("dataset.dim", d)}
    groups.append(Tensors("the held-out sample (eval_samples x d)", e * (d * (8 * 8 + 2 * b) + 2 * width * b),
                          False, eval_keys | width_keys))
    if d == 2:
        g = int(cfg.grid_size) ** 2
        groups.append(Tensors("the score field's grid", g * (2 * width * b + 6 * 2 * 8), True,
                              {"grid_size": _ratio("grid_size", math.sqrt(g))} | width_keys))
    groups.extend(_dataset_geometry(ds, d))
    return groups


def _parameters(cfg: DictConfig, d: int, hidden: list[int], b: int, custom_params: int | None) -> Tensors:
    if hidden or cfg.model.name != "custom":
        widths = [d, *hidden, d]
        count = sum((a + 1) * c for a, c in zip(widths[:-1], widths[1:]))
        keys = {"model.hidden": _ratio("model.hidden", max(hidden))} if hidden else {"dataset.dim": d / 2}
    else:
        count, keys = custom_params or 0, {"model.target": 1.0}
    opt = cfg.optimizer
    state = OPTIMIZERS[opt.name].state(opt)
    copies = 1 + 4 + state + 1  # weights, stacked and averaged gradients, state, the update's temporaries
    trace = 0
    if len(hidden) >= 2:  # B = W1 W_last (and C, C^T for two hidden layers), with transposed copies
        trace = hidden[0] * hidden[-1] * (3 if len(hidden) == 2 else 1) + sum(hidden[1:]) * d
    what = f"the parameters, gradients and {opt.name} state"
    return Tensors(what, (count * copies + trace) * b, True, keys)


def _dataset_geometry(ds: DictConfig, d: int) -> list[Tensors]:
    what, nbytes, keys = DATASET_SCHEMAS[ds.name].geometry_bytes(ds)
    return [Tensors(what, nbytes, False, {"dataset.dim": _ratio("dataset.dim", d)} | keys)]


def _device(cfg: DictConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def available_memory() -> tuple[int, str] | None:
    """Bytes of RAM this process can still use and where the number comes from, or None if unknown."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = (int(line.split()[1]) * 1024, "MemAvailable")
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages")
        except (AttributeError, OSError, ValueError):
            return None
    limit = _cgroup_room()
    if limit is not None and limit < found[0]:
        found = (limit, "cgroup memory.max")
    return found


def _cgroup_room() -> int | None:
    """memory.max minus memory.current of this process's cgroup (v2), when it sets a limit."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        base = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text()))
    except (OSError, ValueError, IndexError):
        return None


def device_memory() -> tuple[int, str] | None:
    """Free bytes on the current CUDA device, or None."""
    try:
        return torch.cuda.mem_get_info()[0], "free on the CUDA device"
    except (RuntimeError, AssertionError):
        return None


def fmt(nbytes: float) -> str:
    """Bytes with a binary unit: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} EiB"


def _value(cfg: DictConfig, key: str) -> object:
    if key == "dataset.dim":
        return cfg.dataset.get("dim", 2)
    value = cfg
    for part in key.split("."):
        value = value[part]
    return list(value) if isinstance(value, ListConfig) else value


def memory_check(cfg: DictConfig, custom_params: int | None = None) -> None:
    """Refuse (ConfigError, one line naming the key that makes the largest tensors large) a run whose
    estimated memory exceeds what is available; log a warning once above WARN_FRACTION of it."""
    groups = estimate(cfg, custom_params)
    cuda = _device(cfg) == "cuda"
    pools = [(groups if not cuda else [g for g in groups if not g.on_device], available_memory(), "memory")]
    if cuda:
        pools.append(([g for g in groups if g.on_device], device_memory(), "GPU memory"))
    for members, room, what in pools:
        if room is None or not members:
            continue
        total = sum(g.nbytes for g in members)
        largest = max(members, key=lambda g: g.nbytes)
        key = largest.blamed_key()
        line = (f"{key}={_value(cfg, key)}: the run needs about {fmt(total)} of {what}, most for "
                f"{largest.what} ({fmt(largest.nbytes)})")
        if total > room[0]:
            raise ConfigError(f"{line}; more than the {fmt(room[0])} available ({room[1]}): lower {key}")
        if total > WARN_FRACTION * room[0] and line not in _warned:
            _warned.add(line)
            log.warning("%s: over %d%% of the %s available (%s)", line, round(100 * WARN_FRACTION),
                        fmt(room[0]), room[1])
