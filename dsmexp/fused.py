"""The fused CPU step: forward, exact divergence, every section-4 metric sum and both reverse passes
(ISM, Eq. 8, and DSM-S, Eq. 9) of the two-hidden-layer MLP in one pass over each tile of 16 points
(dsmexp/csrc/fused_step.cpp), built on first use with torch.utils.cpp_extension (the C++ compiler,
-O3 -march=native, OpenMP) and cached.

Same formulas as divergence.TwoLayerKernel: div s = sum_jk D2_k C_kj D1_j with C = W2 * (W1 W3)^T. The
C++ code returns G_C = sum over points of D2 D1^T, turned here, once per step, into the divergence's
gradient through C (the C-path terms of divergence.two_layer_backward). The noise is drawn by the caller
with torch's generator in the runner's layout, so a run's data, noise and checkpoints are the same
whichever kernel runs; results agree with the torch path to float32 rounding.

`kernel=auto` uses it on CPU for float32 runs of ism, dsm or dsm_s with the two-hidden-layer MLP and a
tanh, sigmoid or silu activation when it builds; `kernel=fused` requires it; `kernel=torch` never uses it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import torch
from omegaconf import DictConfig
from torch import Tensor

from dsmexp.config import ConfigError
from dsmexp.models import ScoreMLP
from dsmexp.objectives import StepSums, StepTerms, _assemble
from dsmexp.runlock import exclusive

log = logging.getLogger(__name__)

KERNELS = ("auto", "fused", "torch")
ACTIVATION_IDS = {"tanh": 0, "sigmoid": 1, "silu": 2}  # softplus needs a logarithm: torch path
FUSED_LOSSES = ("ism", "dsm", "dsm_s")
SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_step.cpp"
CFLAGS = ["-O3", "-march=native", "-fopenmp"]
CACHE_ENV = "DSMEXP_KERNEL_CACHE"  # where builds are cached; default: torch's (TORCH_EXTENSIONS_DIR)


class BuildError(RuntimeError):
    """The fused kernel cannot be built or loaded here; the message says why, in one line."""


def not_applicable(cfg: DictConfig) -> str | None:
    """Why the fused kernel does not apply to this run's settings, or None when it does."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu":
        return f"device={device}: the fused kernel runs on the CPU"
    if cfg.dtype != "float32":
        return f"dtype={cfg.dtype}: the fused kernel computes in float32"
    if cfg.diagnostics_every == 0:
        return "diagnostics_every=0: the trained objective alone runs on the torch path"
    if cfg.loss.name not in FUSED_LOSSES:
        return f"loss={cfg.loss.name}: the fused kernel covers {', '.join(FUSED_LOSSES)}"
    if cfg.model.get("name", "mlp") != "mlp" or len(cfg.model.hidden) != 2:
        return f"model.hidden={list(cfg.model.get('hidden', []))}: the fused kernel needs two hidden layers"
    if cfg.model.activation not in ACTIVATION_IDS:
        return (f"model.activation={cfg.model.activation}: the fused kernel covers "
                f"{', '.join(ACTIVATION_IDS)}")
    if os.name != "posix":
        return "the fused kernel's build cache needs a POSIX system"
    return None


def choose(cfg: DictConfig) -> tuple[str, str]:
    """The kernel this run uses (fused or torch) and why; ConfigError when kernel=fused cannot run."""
    if cfg.kernel == "torch":
        return "torch", "kernel=torch"
    reason = not_applicable(cfg)
    if reason is None:
        try:
            load()
        except BuildError as err:
            reason = f"the fused kernel is unavailable: {err}"
        else:
            return "fused", f"kernel={cfg.kernel}: C++ kernel built for this CPU"
    if cfg.kernel == "fused":
        raise ConfigError(f"kernel=fused: {reason}; use kernel=auto or kernel=torch")
    return "torch", reason


def check_config(cfg: DictConfig) -> None:
    """For config validation: kernel is one of KERNELS, and kernel=fused can run (builds it if needed)."""
    if cfg.kernel not in KERNELS:
        raise ConfigError(f"kernel={cfg.kernel}: must be one of {', '.join(KERNELS)}")
    if cfg.kernel == "fused":
        choose(cfg)


_loaded: ModuleType | BuildError | None = None


def load() -> ModuleType:
    """The compiled extension, built on first use and cached on disk; BuildError when it cannot be."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = _build()
        except BuildError as err:
            _loaded = err
    if isinstance(_loaded, BuildError):
        raise _loaded
    return _loaded


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")  # the compiler torch.utils.cpp_extension invokes
    if shutil.which(compiler) is None:
        raise BuildError(f"no C++ compiler (CXX={compiler} not found)")
    if not cpp_extension.is_ninja_available():
        raise BuildError("ninja, which torch.utils.cpp_extension builds with, is not installed")
    name = f"dsmexp_fused_{_build_key(compiler)}"
    root = Path(os.environ.get(CACHE_ENV) or os.environ.get("TORCH_EXTENSIONS_DIR")
                or cpp_extension.get_default_build_root())
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive(root / f"{name}.lock"):  # one build per key at a time, across processes
        if not (directory / f"{name}.so").exists():
            log.info("compiling the fused CPU kernel (once, about 30 s; cached in %s)", directory)
        # the build compiles a copy kept beside it: the build file then names the same source path for
        # every install sharing this cache (a checkout, a wheel in a venv), so none makes another rebuild
        source = directory / SOURCE.name
        if not source.exists():  # copied whole or not at all: a killed copy leaves only the .tmp
            shutil.copyfile(SOURCE, source.with_suffix(".tmp"))
            os.replace(source.with_suffix(".tmp"), source)
        try:
            return cpp_extension.load(name=name, sources=[str(source)], extra_cflags=CFLAGS,
                                      extra_ldflags=["-fopenmp"], build_directory=str(directory))
        except Exception as err:  # a compiler error, a missing header, a link failure
            lines = [line for line in str(err).splitlines() if line.strip()]
            raise BuildError(f"the build failed ({lines[0] if lines else type(err).__name__})") from err


def _build_key(compiler: str) -> str:
    """Hash of everything the binary depends on: source, flags, compiler, torch and this CPU's features
    (a cache shared between machines holds one build per instruction set)."""
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"the C++ compiler {compiler} does not run ({err})") from err
    parts = [SOURCE.read_bytes().decode(), " ".join(CFLAGS), compiler, version, torch.__version__,
             platform.machine(), _cpu_features()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


class FusedKernel:
    """objectives.step_terms for the two-hidden-layer MLP in one C++ pass (same arguments, same result
    to float32 rounding). chunk_size is accepted and unused: nothing per point is kept in memory."""

    def __init__(self, model: ScoreMLP) -> None:
        self.model, self.module = model, load()
        self.activation = ACTIVATION_IDS[model.activation_name]

    def step_terms(self, x: Tensor, eps: Tensor | None, sigma: float, loss: str, diagnostics: bool = True,
                   chunk_size: int | None = None) -> StepTerms:
        noisy = sigma > 0
        params = [p.detach().contiguous() for p in self.model.parameters()]
        w1, _, w2, _, w3, _ = params
        bmat = w1 @ w3
        cmat = (w2 * bmat.T).contiguous()
        e_fm = eps.permute(2, 0, 1).contiguous() if noisy else x.new_empty(0)  # (d, M, N): a view
        want_ism = loss == "ism" or diagnostics
        want_dsm = noisy and (loss != "ism" or diagnostics)
        sums_out, flat, g_c, shifts = self.module.fused_step(
            x.T.contiguous(), e_fm, float(sigma), params, self.activation, want_ism, want_dsm, cmat)
        count = x.shape[0] * (eps.shape[0] if noisy else 1)
        sums = StepSums(sigma)
        sums.count = sums.fits.count = count
        rows = [0, 1] if noisy else [0]
        sums.fits.shift = shifts[rows, None]
        sums.fits.sum1, sums.fits.sum2 = sums_out[[3, 5]][rows], sums_out[[4, 6]][rows]
        sums.squares = sums_out[:3] if noisy else sums_out[:1]
        grads = [_split(flat[r], params) for r in range(2)]
        g_ism = self._add_c_path(grads[0], g_c, params, bmat) if want_ism else None
        g_ism = [g / count for g in g_ism] if want_ism else None
        g_dsm = [g / count for g in grads[1]] if want_dsm else None
        metrics = _assemble(sums, None, g_ism, g_dsm, None, loss, sums_out)
        trained = g_ism if loss == "ism" else g_dsm
        return StepTerms(metrics, [g.to(p.dtype) for g, p in zip(trained, params)])

    @staticmethod
    def _add_c_path(grads: list[Tensor], g_c: Tensor, params: list[Tensor], bmat: Tensor) -> list[Tensor]:
        """The divergence's gradient through C = W2 * B^T, B = W1 W3, from G_C = sum D2 D1^T."""
        w1, _, w2, _, w3, _ = (p.double() for p in params)
        g_b = (g_c * w2).T
        grads[2] += g_c * bmat.double().T
        grads[0] += g_b @ w3.T
        grads[4] += w1.T @ g_b
        return grads


def _split(flat: Tensor, params: list[Tensor]) -> list[Tensor]:
    """A flat gradient in parameter order, split and shaped like the parameters."""
    return [g.view(p.shape) for g, p in zip(flat.split([p.numel() for p in params]), params)]
