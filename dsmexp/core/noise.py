"""The noise of a training step: z = x + sigma * eps for every data point and noise row, eps drawn from the
run's noise kernel (noise.kernel) at scale 1, and the kernel's denoising target grad_z log q(z | x).

- gaussian (the paper's): eps ~ N(0, I), grad_z log q(z | x) = -eps / sigma;
- laplace: the product kernel, each coordinate of eps with density exp(-|e|) / 2 (variance 2 sigma^2
  per coordinate at scale sigma); grad_z log q(z | x) = -sign(eps) / sigma;
- student_t: the multivariate Student-t with noise.df degrees of freedom, eps = g / sqrt(w) with
  g ~ N(0, I) and one w ~ Gamma(df / 2, rate df / 2) per point (covariance sigma^2 df / (df - 2) I for
  df > 2; heavy tails, rotation invariant); log q(z | x) = -(df + d) / 2 log(1 + |eps|^2 / df) + const,
  so grad_z log q(z | x) = -(df + d) eps / (sigma (df + |eps|^2)).

Each kernel is symmetric and absolutely continuous, so Prop. 2 (E[div s(z)] = -E[<s(z), grad_z log q(z|x)>],
integration by parts) holds for all three. Drawn feature-major, a (d, M, N) tensor viewed as (M, N, d), so
step.step_terms forms z without copies. With antithetic pairs the M rows are M / 2 draws, each followed by
its negative (rows 2k and 2k + 1 are eps and -eps): every odd-order term of the noise cancels within a
pair, the leading <s(x), eps> / sigma of DSM's fitting term among them, while each pair keeps the mean of
the two points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

KERNELS = ("gaussian", "laplace", "student_t")


@dataclass(frozen=True)
class NoiseKernel:
    """A noise kernel q(z | x) = k_sigma(z - x) at scale sigma: `kind` in KERNELS, df for student_t."""

    kind: str = "gaussian"
    df: float = 3.0

    @property
    def gaussian(self) -> bool:
        return self.kind == "gaussian"

    def describe(self) -> str:
        return f"student_t (df={self.df:g})" if self.kind == "student_t" else self.kind

    def draw(self, shape: tuple[int, int, int], gen: torch.Generator, device: torch.device,
             dtype: torch.dtype) -> Tensor:
        """Standard draws eps (scale 1) of shape (d, rows, n): coordinates first."""
        if self.kind == "gaussian":
            return torch.randn(shape, generator=gen, device=device, dtype=dtype)
        if self.kind == "laplace":  # the difference of two Exp(1) draws is Laplace(0, 1)
            first = torch.empty(shape, device=device, dtype=dtype).exponential_(generator=gen)
            return first.sub_(torch.empty(shape, device=device, dtype=dtype).exponential_(generator=gen))
        g = torch.randn(shape, generator=gen, device=device, dtype=dtype)
        w = standard_gamma(0.5 * self.df, (1, *shape[1:]), gen, device, dtype).mul_(2 / self.df)
        return g.div_(w.sqrt_())

    def draw_numpy(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Standard draws (n, d) in float64 (the held-out sample's noise)."""
        if self.kind == "gaussian":
            return rng.standard_normal(shape)
        if self.kind == "laplace":
            return rng.laplace(size=shape)
        w = rng.gamma(0.5 * self.df, 2 / self.df, size=(shape[0], 1))
        return rng.standard_normal(shape) / np.sqrt(w)

    def target(self, e: Tensor, sigma: float) -> Tensor:
        """grad_z log q(z | x) at z - x = sigma e, for e (d, B) coordinates first: DSM's regression target."""
        if self.kind == "gaussian":
            return e / -sigma
        if self.kind == "laplace":
            return torch.sign(e).div_(-sigma)
        dim = e.shape[0]
        return e * (-(self.df + dim) / sigma / (self.df + (e * e).sum(0, keepdim=True)))

    def log_density(self, u: np.ndarray, sigma: float) -> np.ndarray:
        """log k_sigma(u) for displacements u (..., d), normalised (float64)."""
        dim = u.shape[-1]
        if self.kind == "gaussian":
            return -0.5 * (u * u).sum(-1) / sigma**2 - dim * math.log(math.sqrt(2 * math.pi) * sigma)
        if self.kind == "laplace":
            return -np.abs(u).sum(-1) / sigma - dim * math.log(2 * sigma)
        df = self.df
        log_norm = (math.lgamma(0.5 * (df + dim)) - math.lgamma(0.5 * df)
                    - 0.5 * dim * math.log(df * math.pi) - dim * math.log(sigma))
        return log_norm - 0.5 * (df + dim) * np.log1p((u * u).sum(-1) / (df * sigma**2))


GAUSSIAN = NoiseKernel()


def noise_kernel(cfg: Any) -> NoiseKernel:
    """The run's kernel from its config (noise.kernel, noise.df); Gaussian for configs without them."""
    node = cfg.get("noise") if hasattr(cfg, "get") else None
    if node is None:
        return GAUSSIAN
    return NoiseKernel(str(node.get("kernel", "gaussian")), float(node.get("df", 3.0)))


def standard_gamma(shape: float, size: tuple[int, ...], gen: torch.Generator, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
    """Gamma(shape, rate 1) draws from the generator gen (torch's own sampler takes none): Marsaglia and
    Tsang's squeeze method ("A simple method for generating gamma variables", ACM TOMS 2000) for
    shape >= 1, and Gamma(shape + 1) * U^(1 / shape) below 1. Rejected draws are redrawn, all at once."""
    boost = shape < 1
    a = shape + 1 if boost else shape
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    count = math.prod(size)
    out = torch.empty(count, device=device, dtype=torch.float64)
    todo = torch.arange(count, device=device)
    while todo.numel():
        n = todo.numel()
        x = torch.randn(n, generator=gen, device=device, dtype=torch.float64)
        u = torch.rand(n, generator=gen, device=device, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if boost:
        u = torch.rand(count, generator=gen, device=device, dtype=torch.float64)
        out = out * u.pow(1 / shape)
    return out.reshape(size).to(dtype)


def draw_noise(x: Tensor, samples: int, antithetic: bool, gen: torch.Generator,
               kernel: NoiseKernel = GAUSSIAN) -> Tensor:
    """The step's noise (M, N, d) for data x (N, d): M = samples rows, in pairs when antithetic."""
    n, dim = x.shape[0], x.shape[1]
    if not antithetic:
        return kernel.draw((dim, samples, n), gen, x.device, x.dtype).permute(1, 2, 0)
    half = kernel.draw((dim, samples // 2, n), gen, x.device, x.dtype)[:, :, None, :]
    return torch.cat([half, -half], 2).reshape(dim, samples, n).permute(1, 2, 0)
