"""The variance-reduced denoising objectives: DSM-S (Eq. 9) with another regression target t for s(z),
each trained through the same step (step.step_terms) as 0.5 |s(z)|^2 - <s(z), t> per point (plus, for the
control variate, a term at the clean point), so their fitting term fit_vr = mean -<s, t> is the analogue
of fit_dsm and, like it, equals fit_ism in expectation (Prop. 2's integration by parts).

- dsm_s: t = -eps / sigma (Vincent 2011; the paper's Eq. 9): the reference the others are measured
  against; its per-point variance grows like 1 / sigma^2.
- dsm_cv: DSM-S minus the zero-mean control variate <s(x), eps> / sigma, the same network at the clean
  point x (E[eps | x] = 0, so the expected loss and gradient are DSM-S's): per point
  0.5 |s(z)|^2 + <s(z) - s(x), eps> / sigma, whose fitting term tends to eps^T (ds/dz) eps, mean div s,
  as sigma -> 0 instead of exploding (Wang et al. 2020, "A Wasserstein minimum velocity approach to
  learning unnormalized models", AISTATS, Sec. 3.2, the control variate for DSM; recommended for small
  sigma in Song's NCSN notes).
- tsm: target score matching (De Bortoli et al. 2024, "Target score matching", Eq. 5 with additive
  noise): t = grad log p_data(x), the clean data's own score, known exactly for the built-in data with a
  density. Tweedie-like identity: E[grad log p(x) | z] = grad log q_sigma(z), so the minimiser is the same
  as DSM's; the target does not blow up as sigma -> 0 (its variance grows with sigma instead).
- tsm_mix: t = (1 - kappa) (-eps / sigma) + kappa grad log p_data(x), both targets' identities at once
  (a control-variate combination, Kahouli et al. 2025, "Control variate score matching"). kappa(sigma) =
  v / (v + sigma^2), v the data's mean per-coordinate variance: the variance-minimising coefficient for
  Gaussian data N(mu, v I), where the combined target is the exact posterior mean (Tweedie) and has zero
  variance given z; loss.kappa fixes it instead.

A target function takes (e (d, B) noise of the chunk, sigma, clean (d, B) grad log p_data at each point's
clean x or None, kappa) and returns t (d, B).
"""

from __future__ import annotations

from torch import Tensor


def denoising_target(e: Tensor, sigma: float, clean: Tensor | None, kappa: float) -> Tensor:
    """-eps / sigma: DSM-S's target (also dsm_cv's, whose control variate is added at the clean point)."""
    return e / -sigma


def target_score(e: Tensor, sigma: float, clean: Tensor | None, kappa: float) -> Tensor:
    """grad log p_data(x): target score matching's target."""
    return clean


def mixed_target(e: Tensor, sigma: float, clean: Tensor | None, kappa: float) -> Tensor:
    """(1 - kappa) (-eps / sigma) + kappa grad log p_data(x)."""
    return clean.mul(kappa).add_(e, alpha=-(1 - kappa) / sigma)


def control_variate(clean_s: Tensor, e: Tensor, sigma: float) -> Tensor:
    """dsm_cv's term -<s(x), eps> / sigma per point, from the network at the clean points s(x) and the
    noise e, coordinates first ((d, B) each, or any shapes that broadcast; the sum runs over dim 0). Its
    cotangent with respect to s(x) is -eps / sigma, summed over each clean point's noise draws."""
    return (clean_s * e).sum(0).div_(-sigma)


def optimal_kappa(data_variance: float, sigma: float) -> float:
    """v / (v + sigma^2): the coefficient that makes the mixed target's variance zero for N(mu, v I) data.

    With z = x + sigma eps and x | z ~ N(m, w I), w = v sigma^2 / (v + sigma^2): the DSM target
    A = (x - z) / sigma^2 and the TSM target B = -(x - mu) / v have Var A = w / sigma^4, Var B = w / v^2
    and Cov(A, B) = -w / (sigma^2 v) per coordinate; Var((1 - k) A + k B) is smallest (zero) at
    k = (Var A - Cov) / (Var A + Var B - 2 Cov) = v / (v + sigma^2)."""
    return data_variance / (data_variance + sigma * sigma)
