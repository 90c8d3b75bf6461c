"""The sample command's config (conf/sample.yaml, `python -m dsmexp.sample`): which run, which score,
how many points and seeds, and the sampler=NAME group (one schema for every sampler; the names are the
SAMPLERS of dsmexp/core/samplers.py), with the pure checks of their values."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from omegaconf import MISSING, DictConfig

SCORES = ("model", "exact")
INITS = ("uniform", "gaussian")


@dataclass
class SamplerConfig:
    name: str = MISSING
    steps: int = 1000  # langevin: steps; reverse_sde, pc: sigmas from sigma_max to sigma_min
    step_size: float = 0.1  # langevin: alpha
    sigma: float | None = None  # langevin: the sigma of the score (null: the run's sigma, or its sigma_min)
    eps: float = 0.1  # annealed_langevin: alpha_i = eps sigma_i^2 / sigma_L^2
    steps_per_level: int = 100  # annealed_langevin
    levels: int | None = None  # annealed_langevin: null = the run's schedule levels
    sigma_max: float | None = None  # null: the run's schedule (or, with score=exact, required)
    sigma_min: float | None = None
    snr: float = 0.16  # pc: the corrector's signal-to-noise ratio
    corrector_steps: int = 1  # pc
    denoise: bool = True  # reverse_sde, pc, pf_ode: end with Tweedie's x + sigma_min^2 s(x, sigma_min)
    method: str = "dopri5"  # pf_ode: torchdiffeq's solver
    rtol: float = 1.0e-5
    atol: float = 1.0e-5
    init: str = "gaussian"  # uniform (in box^d) or gaussian (N(0, sigma_max^2 I))
    box: list[float] = field(default_factory=lambda: [-8.0, 8.0])


@dataclass
class SampleConfig:
    run: str = MISSING  # the run directory whose model is sampled (and whose dataset is the target)
    score: str = "model"  # model (the run's network) or exact (the reference score of q_sigma)
    n: int = 1000  # points per sampler seed
    seeds: int = 3  # sampler seeds seed..seed+seeds-1: the standard errors
    seed: int = 0
    data_n: int = 2000  # the fresh data sample the quality is measured against
    sampler: SamplerConfig = MISSING


def sampler_names() -> list[str]:
    from dsmexp.core.samplers import SAMPLERS

    return list(SAMPLERS)


def check_sample(cfg: DictConfig, fail: Callable[[str], None]) -> None:
    """Values only: no unknown key, the score, the counts, the sampler's name and its settings."""
    from dsmexp.core.samplers import ODE_METHODS, SAMPLERS  # torch loads here: --help stays fast

    for node, schema, prefix in ((cfg, SampleConfig, ""), (cfg.sampler, SamplerConfig, "sampler.")):
        known = [f.name for f in fields(schema)]
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else ""
                fail(f"{prefix}{key}: not a setting of the sample command{hint} (known: {', '.join(known)})")
    s = cfg.sampler
    if cfg.score not in SCORES:
        fail(f"score={cfg.score}: must be one of {', '.join(SCORES)}")
    for key, low in (("n", 2), ("seeds", 1), ("data_n", 2)):
        if cfg[key] < low:
            fail(f"{key}={cfg[key]}: must be >= {low}")
    if s.name not in SAMPLERS:
        fail(f"sampler={s.name}: must be one of {', '.join(SAMPLERS)}")
    for key in ("steps", "steps_per_level"):
        if s[key] < 1:
            fail(f"sampler.{key}={s[key]}: must be >= 1")
    for key in ("step_size", "eps", "snr", "rtol", "atol"):
        if not s[key] > 0:
            fail(f"sampler.{key}={s[key]}: must be > 0")
    if s.corrector_steps < 0:
        fail(f"sampler.corrector_steps={s.corrector_steps}: must be >= 0")
    if s.levels is not None and s.levels < 2:
        fail(f"sampler.levels={s.levels}: must be >= 2")
    if s.sigma is not None and s.sigma < 0:
        fail(f"sampler.sigma={s.sigma}: must be >= 0")
    if s.sigma_max is not None and s.sigma_min is not None and not 0 < s.sigma_min < s.sigma_max:
        fail(f"sampler.sigma_min={s.sigma_min}, sampler.sigma_max={s.sigma_max}: must satisfy "
             "0 < sigma_min < sigma_max")
    if s.init not in INITS:
        fail(f"sampler.init={s.init}: must be one of {', '.join(INITS)}")
    if len(s.box) != 2 or not s.box[0] < s.box[1]:
        fail(f"sampler.box={list(s.box)}: must be [low, high] with low < high")
    if s.method not in ODE_METHODS:
        fail(f"sampler.method={s.method}: must be one of {', '.join(ODE_METHODS)} (torchdiffeq)")
