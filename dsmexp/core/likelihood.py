"""The probability-flow ODE's log-likelihood (Song et al. 2021, Sec. 4.3 and Appendix D.2) with the exact
divergence: along dx/dsigma = -sigma s(x, sigma) the density obeys d log p_sigma(x(sigma)) / dsigma =
sigma div s, so

    log q_{sigma_min}(x) = log q_{sigma_max}(x(sigma_max)) - int_{sigma_min}^{sigma_max} sigma div s dsigma,

integrated from x(sigma_min) = x up to sigma_max in log sigma (torchdiffeq, float64). dsmexp knows the
end density log q_{sigma_max} exactly (the reference log density of the data at sigma_max), so the only
errors left are the score's and the solver's; against the exact log q_{sigma_min}(x) the gap is the
learned score's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dsmexp.core.samplers import ode_options

# score_and_div(z (n, d), sigma (n,)) -> (s (n, d), div s (n,))
ScoreAndDiv = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def pf_ode_log_likelihood(score_and_div: ScoreAndDiv, x: Tensor, sigma_min: float, sigma_max: float,
                          end_log_density: Callable[[Tensor], Tensor], rtol: float = 1e-5,
                          atol: float = 1e-5, method: str = "dopri5") -> Tensor:
    """log q_{sigma_min}(x) (n,) by the probability-flow ODE; end_log_density(z) is log q_{sigma_max}."""
    from torchdiffeq import odeint

    n = x.shape[0]

    def drift(log_sigma: Tensor, state: Tensor) -> Tensor:
        sigma = log_sigma.exp()
        s, div = score_and_div(state[:, :-1], sigma.expand(n))
        # d/dlog(sigma) = sigma d/dsigma: x' = -sigma^2 s, (int sigma div s dsigma)' = sigma^2 div s
        return torch.cat([-sigma * sigma * s, (sigma * sigma * div)[:, None]], 1)

    start = torch.cat([x.double(), torch.zeros(n, 1, dtype=torch.float64, device=x.device)], 1)
    span = torch.tensor([sigma_min, sigma_max], dtype=torch.float64, device=x.device).log()
    end = odeint(drift, start, span, method=method, rtol=rtol, atol=atol,
                 options=ode_options(method, span))[-1]
    return end_log_density(end[:, :-1]) - end[:, -1]
