"""The schedule node (conf/config.yaml, experiment=multiscale): a noise-conditional model trained across
noise scales (dsmexp/core/schedules.py), its weighting lambda(sigma), and their pure checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

KINDS = ("none", "geometric", "continuous")


@dataclass
class ScheduleConfig:
    kind: str = "none"
    levels: int = 10
    sigma_min: float = 0.01
    sigma_max: float = 1.0
    sampling: str = "random"


def multiscale(cfg: DictConfig) -> bool:
    """True for a run across a schedule of noise scales (schedule.kind geometric or continuous)."""
    return cfg.schedule.kind != "none"


def check_schedule(cfg: DictConfig, fail: Callable[[str], None]) -> None:
    """The schedule, the weighting and what only a multi-scale run may use (hybrid, parametrizations)."""
    # the core modules (torch) load at the first check: --help and completion stay fast
    from dsmexp.core.conditioning import EMBEDDINGS, PARAMETRIZATIONS
    from dsmexp.core.objectives.registry import OBJECTIVES
    from dsmexp.core.schedules import SAMPLINGS, WEIGHTINGS

    schedule, model, loss = cfg.schedule, cfg.model, cfg.loss.name
    if schedule.kind not in KINDS:
        fail(f"schedule.kind={schedule.kind}: must be one of {', '.join(KINDS)}")
    parametrization = model.get("parametrization", "score")
    if parametrization not in (*PARAMETRIZATIONS, "energy"):
        fail(f"model.parametrization={parametrization}: must be one of {', '.join(PARAMETRIZATIONS)}, energy")
    if parametrization == "energy" and model.name != "mlp":
        fail(f"model.parametrization=energy with model={model.name}: the energy network is model=mlp's "
             "(an MLP energy E with s = -grad E)")
    if parametrization == "energy" and cfg.kernel == "fused":
        fail("kernel=fused with model.parametrization=energy: the fused kernel computes a score MLP's "
             "terms; an energy model runs on the torch path (kernel=auto or torch)")
    row = OBJECTIVES.get(loss)
    if not multiscale(cfg):
        if row is not None and row.multiscale_only:
            fail(f"loss={loss}: trains across noise scales only; set schedule.kind=geometric or continuous "
                 "(experiment=multiscale does)")
        if parametrization not in ("score", "energy"):
            fail(f"model.parametrization={model.parametrization}: needs a noise-conditional model; set "
                 "schedule.kind=geometric or continuous (experiment=multiscale does)")
        return
    if schedule.levels < 2:
        fail(f"schedule.levels={schedule.levels}: must be >= 2 (one level is a single-sigma run: "
             "schedule.kind=none sigma=...)")
    if not 0 < schedule.sigma_min < schedule.sigma_max:
        fail(f"schedule.sigma_min={schedule.sigma_min}, schedule.sigma_max={schedule.sigma_max}: must "
             "satisfy 0 < sigma_min < sigma_max")
    if schedule.sampling not in SAMPLINGS:
        fail(f"schedule.sampling={schedule.sampling}: must be one of {', '.join(SAMPLINGS)}")
    if cfg.weighting not in WEIGHTINGS:
        fail(f"weighting={cfg.weighting}: must be one of {', '.join(WEIGHTINGS)}")
    if cfg.sigma_data <= 0:
        fail(f"sigma_data={cfg.sigma_data}: must be > 0 (the data scale of weighting=edm)")
    if row is not None and not row.multiscale:
        known = ", ".join(n for n, o in OBJECTIVES.items() if o.multiscale)
        fail(f"loss={loss}: not available across a noise schedule; one of {known}")
    if loss == "hybrid" and cfg.loss.get("switch_sigma") is None:
        fail("loss.switch_sigma: missing; loss=hybrid trains ISM below it and DSM above (e.g. "
             f"loss.switch_sigma={(schedule.sigma_min * schedule.sigma_max) ** 0.5:.3g})")
    if model.name == "mlp":
        if model.embedding not in EMBEDDINGS:
            fail(f"model.embedding={model.embedding}: must be one of {', '.join(EMBEDDINGS)}")
        if model.embedding == "fourier" and model.fourier_features < 2:
            fail(f"model.fourier_features={model.fourier_features}: must be >= 2 (sine and cosine pairs)")
        if model.scale_output and model.parametrization == "energy":
            fail("model.scale_output=true with model.parametrization=energy: the 1/sigma output scaling is "
                 "for parametrization=score (an energy's score is its gradient)")
        if model.scale_output and model.parametrization != "score":
            fail(f"model.scale_output=true with model.parametrization={model.parametrization}: the 1/sigma "
                 "output scaling is for parametrization=score (noise and data predictions are O(1) already)")
    if cfg.kernel == "fused":
        fail("kernel=fused: the fused kernel computes one-sigma models; a noise-conditional model uses "
             "kernel=auto or torch")
