"""The fused CPU step: forward, exact divergence, every per-step metric sum and both reverse passes
(ISM, Eq. 8, and DSM-S, Eq. 9) of the two-hidden-layer MLP in one pass over each tile of points
(csrc/fused_step.cpp: plain C++ with a C entry point, loaded with ctypes).

Same formulas as kernels.two_layer.TwoLayerKernel: div s = sum_jk D2_k C_kj D1_j with C = W2 * (W1 W3)^T.
The C++ code returns G_C = sum over points of D2 D1^T, turned here, once per step, into the divergence's
gradient through C (the C-path terms of kernels.two_layer.two_layer_backward). The noise is drawn by the
caller with torch's generator in the runner's layout, so a run's data, noise and checkpoints are the same
whichever kernel runs; results agree with the torch path to float32 rounding.

The build (compile on first use, cache, load) is fused_build.py.

The denoising variants (targets.py) take a third reverse pass for the cotangent s - t (tsm, tsm_mix: the
target t goes to the C++ code as rv = -t per point); dsm_cv's part at z is DSM-S's own pass, and its
control variate -<s(x), eps> / sigma at the clean points (N of them, not M N) is added here with torch:
its per-point value as fit_vr's offset q, its gradient per gradient-variance group.

`kernel=auto` uses it on CPU for float32 runs of the objectives whose registry row says fused_ok (ism,
dsm, dsm_s and the denoising variants) with the two-hidden-layer MLP and a tanh, sigmoid or silu
activation, under every noise kernel (noise.py), when it builds; `kernel=fused` requires it;
`kernel=torch` never uses it.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from typing import Any

import torch
from torch import Tensor

from dsmexp.core.networks import ScoreMLP
from dsmexp.core.noise import GAUSSIAN, NoiseKernel
from dsmexp.core.objectives.fused_build import BuildError, load
from dsmexp.core.objectives.gradvar import GradientGroups
from dsmexp.core.objectives.registry import OBJECTIVES, objective
from dsmexp.core.objectives.step import CPU_CHUNK, group_points
from dsmexp.core.objectives.targets import control_variate
from dsmexp.core.objectives.terms import Moments, StepSums, StepTerms, assemble
from dsmexp.errors import ConfigError

log = logging.getLogger(__name__)

KERNELS = ("auto", "fused", "torch")
ACTIVATION_IDS = {"tanh": 0, "sigmoid": 1, "silu": 2}  # softplus needs a logarithm: torch path
# kernel=auto takes the fused kernel up to this many middle-layer weights (n1 * n2): one thread's step on
# an AVX2 CPU (N = 1000, M = 50, d = 2) took 0.41x the torch path's time at 16-32, 0.70x at 64-64 and
# 1.27x at 128-128, where torch's matrix products win (README, The fused CPU kernel)
MAX_AUTO_WIDTHS = 64 * 64
# at most this many C++ calls per step for the gradient-variance groups: each call has its own start-up
# (threads, the shift tile, a copy of its noise rows); the paper step (N = 1000, M = 500, 2 threads) took
# 45.7 ms in one call, 48.6 ms in 8 and 56-60 ms in 32 (the torch path's groups of 16 rows)
FUSED_GROUPS = 8


def not_applicable(cfg: Any) -> str | None:
    """Why the fused kernel does not apply to this run's settings, or None when it does."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu":
        return f"device={device}: the fused kernel runs on the CPU"
    if cfg.dtype != "float32":
        return f"dtype={cfg.dtype}: the fused kernel computes in float32"
    if cfg.get("schedule", {}).get("kind", "none") != "none":
        return f"schedule.kind={cfg.schedule.kind}: the fused kernel computes one-sigma models"
    if cfg.diagnostics_every == 0:
        return "diagnostics_every=0: the trained objective alone runs on the torch path"
    if not objective(cfg.loss.name).fused_ok:
        fused_ok = [name for name, row in OBJECTIVES.items() if row.fused_ok]
        return f"loss={cfg.loss.name}: the fused kernel covers {', '.join(fused_ok)}"
    if cfg.model.get("parametrization", "score") == "energy":
        return "model.parametrization=energy: the fused kernel computes a score MLP's terms"
    if cfg.model.get("name", "mlp") != "mlp":
        return f"model={cfg.model.name}: the fused kernel covers model=mlp with two hidden layers"
    if len(cfg.model.hidden) != 2:
        return f"model.hidden={list(cfg.model.hidden)}: the fused kernel needs two hidden layers"
    if cfg.kernel == "auto" and math.prod(cfg.model.hidden) > MAX_AUTO_WIDTHS:
        return (f"model.hidden={list(cfg.model.hidden)}: above {MAX_AUTO_WIDTHS} weights in the middle layer "
                "the torch path's matrix products are faster (kernel=fused forces the fused kernel)")
    if cfg.model.activation not in ACTIVATION_IDS:
        return (f"model.activation={cfg.model.activation}: the fused kernel covers "
                f"{', '.join(ACTIVATION_IDS)}")
    if os.name != "posix":
        return "the fused kernel's build cache needs a POSIX system"
    return None


def choose(cfg: Any) -> tuple[str, str]:
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


class FusedKernel:
    """step.step_terms for the two-hidden-layer MLP in one C++ pass per gradient-variance group (same
    arguments, same result to float32 rounding); chunk_size sets the groups only: nothing per point is
    kept in memory."""

    def __init__(self, model: ScoreMLP) -> None:
        self.model, self.module = model, load()
        self.activation = ACTIVATION_IDS[model.activation_name]

    def step_terms(self, x: Tensor, eps: Tensor | None, sigma: float, loss: str, diagnostics: bool = True,
                   chunk_size: int | None = None, antithetic: bool = False,
                   noise: NoiseKernel = GAUSSIAN, clean_score: Tensor | None = None,
                   kappa: float = 0.0) -> StepTerms:
        """The step in one C++ call, or, when the points fill more than one gradient-variance group of
        whole noise rows (step.group_points with chunk_size, at most FUSED_GROUPS of them; antithetic
        pairs kept whole), one call per group: the groups' gradient sums give grad_var and grad_var_ism
        (gradvar.py), their metric sums add up (the moments moved to the first group's shift). noise: the
        kernel eps was drawn from; for a non-Gaussian one its -grad_z log q(z | x) goes to the C++ code
        beside eps (noise.py; the Gaussian's -eps / sigma is formed there). clean_score (N, d) and kappa:
        a denoising variant's, as in step.step_terms."""
        noisy = sigma > 0
        params = [p.detach().contiguous() for p in self.model.parameters()]
        w1, _, w2, _, w3, _ = params
        bmat = w1 @ w3
        cmat = (w2 * bmat.T).contiguous()
        e_fm = eps.permute(2, 0, 1).contiguous() if noisy else None  # (d, M, N)
        r_fm = None
        if noisy and not noise.gaussian:
            r_fm = noise.target(e_fm.view(e_fm.shape[0], -1), sigma).neg_().view(e_fm.shape)
        row = objective(loss)
        trains, variant = row.trains, row.trains == "vr"
        want_ism = trains == "ism" or diagnostics
        want_dsm = noisy and (trains == "dsm" or diagnostics or row.control)  # dsm_cv's pass at z is DSM-S's
        rv_fm = q_mn = clean_fwd = None
        if variant and row.control:  # q = -<s(x), eps> / sigma at each point's clean x, (M, N)
            with torch.enable_grad():
                clean_fwd = self.model(x)
            q_mn = control_variate(clean_fwd.detach().T[:, None], e_fm, sigma).contiguous()
        elif variant:  # rv = -t, (d, M, N)
            e_flat = e_fm.view(e_fm.shape[0], -1)
            clean = (clean_score.T.repeat(1, eps.shape[0]) if clean_score is not None else None)
            rv_fm = row.target(e_flat, sigma, clean, kappa).neg().view(e_fm.shape).contiguous()
        n, m = x.shape[0], (eps.shape[0] if noisy else 1)
        rows = m
        if noisy:
            fewest = -(-m // FUSED_GROUPS)  # rows per call for at most FUSED_GROUPS calls
            rows = max(group_points(n, chunk_size or CPU_CHUNK, noisy, antithetic) // n, fewest)
            rows += rows % 2 if antithetic else 0
        spans = [(r, min(r + rows, m)) for r in range(0, m, rows)] if noisy else [(0, 1)]
        x_fm = x.T.contiguous()
        fit_rows = ([0, 1, 2] if variant else [0, 1]) if noisy else [0]
        names = [name for name, on in (("ism", want_ism), ("dsm", want_dsm), ("vr", variant)) if on]
        groups = {name: GradientGroups() for name in names}
        totals: dict[str, list[Tensor]] = {}
        squares, shift, sum1, sum2 = 0.0, None, 0.0, 0.0
        for lo, hi in spans:
            part, offset, offset_vr, q_part = e_fm, r_fm, rv_fm, q_mn
            if noisy and len(spans) > 1:
                part = e_fm[:, lo:hi].contiguous()
                offset = r_fm[:, lo:hi].contiguous() if r_fm is not None else None
                offset_vr = rv_fm[:, lo:hi].contiguous() if rv_fm is not None else None
                q_part = q_mn[lo:hi].contiguous() if q_mn is not None else None
            sums_out, flat, g_c, shifts = self._call(x_fm, part, offset, offset_vr, q_part, float(sigma),
                                                     params, cmat, want_ism, want_dsm, variant)
            count = n * (hi - lo)
            a, s1, s2 = shifts[fit_rows], sums_out[[3, 5, 7]][fit_rows], sums_out[[4, 6, 8]][fit_rows]
            if shift is None:
                shift = a
            delta = a - shift
            sum1 = sum1 + s1 + count * delta
            sum2 = sum2 + s2 + 2 * delta * s1 + count * delta * delta
            squares = squares + (sums_out[:3] if noisy else sums_out[:1])
            grads = {name: _split(flat[k], params) for k, name in enumerate(("ism", "dsm", "vr"))}
            if want_ism:
                grads["ism"] = self._add_c_path(grads["ism"], g_c, params, bmat)
            if clean_fwd is not None:  # dsm_cv: DSM-S's pass plus the control variate's gradient at x
                bar = eps[lo:hi].sum(0).div(-sigma)  # (N, d): sum over the group's rows of -eps / sigma
                with torch.enable_grad():
                    g_x = torch.autograd.grad(clean_fwd, list(self.model.parameters()), bar,
                                              retain_graph=True)
                grads["vr"] = [a.clone().add_(b.double()) for a, b in zip(grads["dsm"], g_x)]
            for name in names:
                groups[name].add(grads[name], count)
                groups[name].close()
                totals[name] = (grads[name] if name not in totals
                                else [t.add_(g) for t, g in zip(totals[name], grads[name])])
        total = n * m
        sums = StepSums(sigma)
        sums.count = sums.fits.count = total
        sums.fits.shift, sums.fits.sum1, sums.fits.sum2 = shift[:, None], sum1, sum2
        sums.squares = squares
        if variant:  # the fitting rows without fit_vr's, whose moments go to vr_sums
            sums.fits.shift, sums.fits.sum1, sums.fits.sum2 = shift[:2, None], sum1[:2], sum2[:2]
        g_ism = [g / total for g in totals["ism"]] if want_ism else None
        g_dsm = [g / total for g in totals["dsm"]] if want_dsm and (trains == "dsm" or diagnostics) else None
        g_vr = [g / total for g in totals["vr"]] if variant else None
        vr_sums = None
        if variant:  # per point (norm 0.5 |s|^2, fit_vr); only the norm's mean is used
            vr_sums = Moments()
            vr_sums.count = total
            vr_sums.shift = torch.stack([torch.zeros((), dtype=torch.float64), shift[2]])[:, None]
            vr_sums.sum1 = torch.stack([0.5 * squares[0], sum1[2]])
            vr_sums.sum2 = torch.stack([torch.full((), math.nan, dtype=torch.float64), sum2[2]])
        like = sums_out
        variances = {name: groups[name].variance(like) for name in {"ism", trains} & set(groups)}
        metrics = assemble(sums, None, g_ism, g_dsm, None, loss, like, vr_sums, g_vr, variances)
        trained = {"ism": g_ism, "dsm": g_dsm, "vr": g_vr}[trains]
        return StepTerms(metrics, [g.to(p.dtype) for g, p in zip(trained, params)])

    def _call(self, x_fm: Tensor, e_fm: Tensor | None, r_fm: Tensor | None, rv_fm: Tensor | None,
              q_mn: Tensor | None, sigma: float, params: list[Tensor], cmat: Tensor, ism: bool, dsm: bool,
              vr: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One call of the C entry point on contiguous float32 CPU tensors; float64 sums come back."""
        for t in (x_fm, e_fm, r_fm, rv_fm, q_mn, cmat, *params):
            if t is not None and not (t.dtype == torch.float32 and t.device.type == "cpu"
                                      and t.is_contiguous()):
                raise ValueError("the fused kernel takes contiguous float32 CPU tensors")
        d, n = x_fm.shape
        m = e_fm.shape[1] if e_fm is not None else 1
        n1, n2 = params[0].shape[0], params[2].shape[0]
        size = sum(p.numel() for p in params)
        f64 = {"dtype": torch.float64}
        sums, flat, g_c, shifts = (torch.zeros(9, **f64), torch.zeros(3, size, **f64),
                                   torch.zeros(n2, n1, **f64), torch.zeros(3, **f64))
        pointers = (ctypes.c_void_p * 6)(*(p.data_ptr() for p in params))
        status = self.module.dsmexp_fused_step(
            x_fm.data_ptr(), e_fm.data_ptr() if e_fm is not None else None,
            r_fm.data_ptr() if r_fm is not None else None, rv_fm.data_ptr() if rv_fm is not None else None,
            q_mn.data_ptr() if q_mn is not None else None, n, m, d, n1, n2, sigma,
            pointers, cmat.data_ptr(), self.activation, int(ism), int(dsm), int(vr), torch.get_num_threads(),
            sums.data_ptr(), flat.data_ptr(), g_c.data_ptr(), shifts.data_ptr())
        if status != 0:
            raise RuntimeError(f"the fused kernel returned {status}")
        return sums, flat, g_c, shifts

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
