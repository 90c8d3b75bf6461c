"""Measurements made after training, in one process, into measure.json in the study's sweep directory
(the figures and claims read that file):

- gradients: each finished run's final network (checkpoint.pt) takes, at each level of its schedule, one
  step of its trained objective with every point at that level (M x N points, a fixed noise draw), and
  the norm of the lambda-weighted gradient is recorded: the gradient norm per level of Figure 9;
- ms_per_step: each objective's trained-alone step (diagnostics_every=0) on the study's half-moon
  schedule, timed interleaved with the others on one thread (studies/stopwatch.py), the cost in the
  hybrid claim.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dsmexp.config import compose
from dsmexp.core.objectives.estimators import draw_projections
from dsmexp.core.objectives.levels import multiscale_terms
from dsmexp.core.objectives.registry import objective
from dsmexp.core.schedules import weights
from dsmexp.records import artifacts
from dsmexp.records.levels_file import LEVELS_FILE
from dsmexp.records.sweeps import load_runs
from dsmexp.studies.dimension.timing import round_robin
from dsmexp.train.trainer import Trainer, prepare_cpu


def level_gradients(sweep_dir: Path) -> dict[str, list[float]]:
    """{run directory name: [gradient norm at level 0, 1, ...]} for the finished runs."""
    prepare_cpu(1)
    out = {}
    for run in load_runs(sweep_dir):
        state = artifacts.load_checkpoint(run.run_dir / artifacts.CHECKPOINT_FILE)
        if state is None or run.status != "completed" or not (run.run_dir / LEVELS_FILE).exists():
            continue
        cfg = OmegaConf.load(run.run_dir / ".hydra" / "config.yaml")
        cfg.eval_samples = 10  # the held-out sample is not used here
        trainer = Trainer(cfg, Path(tempfile.gettempdir()))
        trainer.model.load_state_dict(state["model"])
        step, x = trainer.schedule_step, trainer.x
        draws = cfg.noise_samples * len(x)
        norms = []
        for level, sigma in enumerate(step.sigmas.tolist()):
            gen = torch.Generator(device=x.device).manual_seed(1000 + level)
            eps = torch.randn((x.shape[1], draws), generator=gen, device=x.device, dtype=x.dtype)
            sig = torch.full((draws,), sigma, dtype=torch.float64, device=x.device)
            v = (
                draw_projections(cfg.projection, cfg.projections, x.shape[1], draws, gen, x.device, x.dtype)
                if objective(cfg.loss.name).estimator
                else None
            )
            terms = multiscale_terms(
                step.kernel,
                x,
                eps,
                sig,
                torch.full_like(sig, level, dtype=torch.long),
                weights(cfg.weighting, sig, cfg.sigma_data),
                step.levels,
                cfg.loss.name,
                cfg.loss.get("switch_sigma"),
                diagnostics=False,
                v=v,
                trained_only=True,
            )
            norms.append(float(torch.cat([g.reshape(-1) for g in terms.grad]).double().norm()))
        out[run.run_dir.name] = norms
    return out


def step_times(profile: str, losses: list[str], repeats: int, warmup: int) -> dict[str, float]:
    """Median ms of each objective's trained-alone step, interleaved, on the study's half-moon schedule."""
    prepare_cpu(1)
    tmp = Path(tempfile.gettempdir())
    trainers = {
        loss: Trainer(
            compose(
                [
                    "experiment=multiscale",
                    f"+profile={profile}",
                    f"loss={loss}",
                    "diagnostics_every=0",
                    "eval_samples=10",
                ]
            ),
            tmp,
        )
        for loss in losses
    }
    return {
        loss: ms["median"]
        for loss, ms in round_robin({k: t.step for k, t in trainers.items()}, repeats, warmup).items()
    }
