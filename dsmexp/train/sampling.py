"""Sampling a trained run (`python -m dsmexp.sample`): load its network from checkpoint.pt and its dataset
from its config, run a sampler (core/samplers.py) on the network's score or on the exact score of q_sigma
of the same dataset, and measure the samples against a fresh sample of the data (core/quality.py).

Everything lands in RUN_DIR/samples/<sampler>-<hash>/ (the hash of every setting that changes the
samples), never in the run's own files: samples.npz (samples (seeds, n, d), the fresh data sample) and
quality.json (per seed, mean and standard error over the seeds of every number). A directory that holds
finished samples with these settings is reported and kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dsmexp.config.schedule import multiscale
from dsmexp.core import quality as q
from dsmexp.core.conditioning import build_conditional
from dsmexp.core.datasets import Dataset, GaussianMixture, build_dataset
from dsmexp.core.networks import build_model
from dsmexp.core.reference import reference_score
from dsmexp.core.samplers import SAMPLERS, geometric_sigmas, initial_points
from dsmexp.errors import ConfigError, RunFileError
from dsmexp.records import artifacts
from dsmexp.safe_io import make_run_dir, replace_atomically, replace_text
from dsmexp.train.trainer import Seeds

FRESH_DATA_SEED = 7_919  # added to the run's data seed: the quality's data sample is never the training one


@dataclass
class Target:
    """What a sampler needs from a run: its dataset, its config, and its network (None for score=exact)."""

    cfg: DictConfig
    dataset: Dataset
    model: torch.nn.Module | None
    multiscale: bool


def load_target(run_dir: Path, score: str) -> Target:
    """The run's config, dataset and (score=model) trained network; one line when something is missing."""
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"run={run_dir}: not a dsmexp run directory (no .hydra/config.yaml)")
    cfg = OmegaConf.load(config)
    dataset = build_dataset(cfg.dataset, Seeds.from_seed(cfg.seed).data)
    model = None
    if score == "model":
        state = artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT_FILE)
        if state is None:
            raise ConfigError(f"run={run_dir}: has no checkpoint.pt to sample from (train it first, or use "
                              "score=exact)")
        build = build_conditional if multiscale(cfg) else build_model
        model = build(cfg.model, dataset.dim).to(getattr(torch, cfg.dtype))
        model.load_state_dict(state["model"])
        model.eval()
    return Target(cfg, dataset, model, multiscale(cfg))


def settings(sample: DictConfig, target: Target) -> dict:
    """The sampler's settings with the run's defaults filled in (sigmas for the annealed samplers, the
    langevin sigma); ConfigError for a sampler this run cannot drive."""
    s = OmegaConf.to_container(sample.sampler, resolve=True)
    sampler = SAMPLERS[s["name"]]
    cfg = target.cfg
    schedule = cfg.schedule if target.multiscale else None
    if sampler.annealed:
        if target.model is not None and not target.multiscale:
            raise ConfigError(f"sampler={s['name']}: needs a noise-conditional run (schedule.kind geometric "
                              f"or continuous); {sample.run} trained at one sigma = {cfg.sigma}; use "
                              "sampler=langevin, or score=exact with sampler.sigma_max and sampler.sigma_min")
        hi = s["sigma_max"] if s["sigma_max"] is not None else (schedule.sigma_max if schedule else None)
        lo = s["sigma_min"] if s["sigma_min"] is not None else (schedule.sigma_min if schedule else None)
        if hi is None or lo is None:
            raise ConfigError(f"sampler.sigma_max, sampler.sigma_min: needed with sampler={s['name']} and "
                              f"score=exact on a single-sigma run ({sample.run})")
        if not 0 < lo < hi:
            raise ConfigError(f"sampler.sigma_min={lo}, sampler.sigma_max={hi}: must satisfy 0 < sigma_min < "
                              "sigma_max")
        count = s["steps"]
        if s["name"] == "annealed_langevin":
            count = s["levels"] or (schedule.levels if schedule else 10)
        s["sigma_max"], s["sigma_min"] = float(hi), float(lo)
        s["sigmas"] = geometric_sigmas(float(hi), float(lo), int(count))
    else:
        if s["sigma"] is None:
            s["sigma"] = float(schedule.sigma_min if schedule else cfg.sigma)
        if target.model is not None and not target.multiscale and s["sigma"] != cfg.sigma:
            raise ConfigError(f"sampler.sigma={s['sigma']}: the network of {sample.run} is the score at "
                              f"sigma = {cfg.sigma} only")
        if s["sigma_max"] is None:  # the scale of init=gaussian
            s["sigma_max"] = float(schedule.sigma_max) if schedule else 1.0
    return s


def score_function(target: Target, score: str):
    """score(z (n, d), sigma (n,)) -> (n, d): the network's, or the exact score of q_sigma."""
    if score == "exact":
        dataset = target.dataset

        def exact(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            value = reference_score(dataset, z.detach().double().numpy(), float(sigma.reshape(-1)[0]))
            return torch.as_tensor(value, dtype=z.dtype)
        return exact
    models = {target.model.parameters().__next__().dtype: target.model}

    def learned(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if z.dtype not in models:  # pf_ode works in float64: a float64 copy of the network
            models[z.dtype] = copy.deepcopy(target.model).to(z.dtype)
        model = models[z.dtype]
        return (model(z, sigma) if target.multiscale else model(z)).detach()
    return learned


def out_dir(run_dir: Path, sample: DictConfig, s: dict) -> Path:
    """RUN_DIR/samples/<sampler>-<hash of the settings that change the samples>."""
    key = {"score": sample.score, "n": sample.n, "seeds": sample.seeds, "seed": sample.seed,
           "data_n": sample.data_n, "sampler": s}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return run_dir / "samples" / f"{s['name']}-{sample.score}-{digest}"


class Progress:
    """Score calls (each on the whole batch) done out of total: a line on stderr at every tenth, with the
    rate and the time left, the same on a terminal and in a log file. With total 0 (an adaptive ODE
    solver) a line every 10 s and one at the end."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self.next = total, label, 0, 0.1
        self.started = self.shown = time.perf_counter()

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.total and self.done >= self.next * self.total:
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate
            print(f"dsmexp.sample: {self.label}: {self.done}/{self.total} score calls "
                  f"({100 * self.done / self.total:.0f}%), {rate:.0f}/s, {left:.0f} s left", file=sys.stderr,
                  flush=True)
            while self.next * self.total <= self.done:
                self.next += 0.1
        elif not self.total and now - self.shown >= 10:
            self.shown = now
            print(f"dsmexp.sample: {self.label}: {self.done} score calls so far (adaptive steps)",
                  file=sys.stderr, flush=True)

    def finish(self) -> None:
        if not self.total:
            print(f"dsmexp.sample: {self.label}: {self.done} score calls in "
                  f"{time.perf_counter() - self.started:.1f} s (adaptive steps)", file=sys.stderr, flush=True)


@dataclass
class Prepared:
    """A sample command checked against its run: the run loaded and the sampler's full settings."""

    sample: DictConfig
    target: Target
    settings: dict


def prepare(sample: DictConfig) -> Prepared:
    """Every check that reads the disk, before any sampling starts: the run loads and this sampler can
    drive it (ConfigError or RunFileError otherwise)."""
    target = load_target(Path(sample.run), sample.score)
    return Prepared(sample, target, settings(sample, target))


def sample_run(prepared: Prepared) -> Path:
    """Sample, measure, write; returns the output directory."""
    sample, target, s = prepared.sample, prepared.target, prepared.settings
    run_dir = Path(sample.run)
    out = out_dir(run_dir, sample, s)
    if (out / "quality.json").exists():
        print(f"{out}: already sampled with these settings (quality.json); kept (delete it to sample "
              "again)", file=sys.stderr)
        return out
    if run_dir.joinpath("samples").is_symlink() or out.is_symlink():
        raise RunFileError(f"{out}: a symbolic link; dsmexp writes samples into real directories only")
    sampler = SAMPLERS[s["name"]]
    score = score_function(target, sample.score)
    dataset = target.dataset
    data = dataset.sample(sample.data_n, Seeds.from_seed(target.cfg.seed).data + FRESH_DATA_SEED)
    mixture = ((dataset.means, dataset.weights, dataset.scales) if isinstance(dataset, GaussianMixture)
               else None)
    dtype = getattr(torch, target.cfg.dtype)
    samples, per_seed, seconds = [], [], []
    for k in range(sample.seeds):
        seed = sample.seed + k
        gen = torch.Generator().manual_seed(seed)
        x0 = initial_points(s["init"], sample.n, dataset.dim, tuple(s["box"]), s["sigma_max"], gen, dtype)
        progress = Progress(sampler.evaluations(s), f"{s['name']} seed {seed}, {sample.n} points, "
                            f"{sample.score} score")
        started = time.perf_counter()
        with torch.no_grad():
            try:
                x = sampler.fn(score, x0, s, gen, progress).double().numpy()
            except AssertionError as err:  # torchdiffeq's step-size control gave up
                raise ConfigError(f"sampler={s['name']}: the ODE solver failed on {run_dir} ({err}); try "
                                  "sampler.method=rk4, or a looser sampler.rtol / sampler.atol") from None
        progress.finish()
        seconds.append(time.perf_counter() - started)
        data_score = reference_score(dataset, x[:2000], 0.0) if np.isfinite(x).all() else None
        per_seed.append(q.quality(x, data, data_score, seed, mixture))
        samples.append(x)
    report = summarise(per_seed)
    report["likelihood"] = likelihood(target, data, sample.score)
    report |= {"settings": {k: v for k, v in s.items() if k != "sigmas"}, "sigmas": s.get("sigmas"),
               "score": sample.score, "n": sample.n,
               "seeds": list(range(sample.seed, sample.seed + sample.seeds)),
               "data_n": sample.data_n, "run": str(run_dir), "seconds": seconds,
               "true_weights": None if mixture is None else [float(w) for w in mixture[1]]}
    make_run_dir(out)
    replace_atomically(out / "samples.npz", lambda tmp: _save_npz(tmp, np.stack(samples), data))
    replace_text(out / "quality.json", json.dumps(_plain(report), indent=1) + "\n")
    print(f"{out}: samples.npz, quality.json ({sum(seconds):.1f} s sampling)", file=sys.stderr)
    return out


LIKELIHOOD_POINTS = 500


def likelihood(target: Target, data: np.ndarray, score: str) -> dict | None:
    """For a noise-conditional run in 2-D: the probability-flow ODE's log-likelihood of held-out data at
    sigma_min (core/likelihood.py) with the exact divergence (the network's, by its kernel; the exact
    score's, the Laplacian of log q_sigma in closed form), beside the exact log q_sigma_min of the same
    points. With score=exact the gap is the solver's own error, the control for the network's. None for a
    single-sigma run or d > 2."""
    if not target.multiscale or target.dataset.dim != 2:
        return None
    from dsmexp.core.likelihood import pf_ode_log_likelihood
    from dsmexp.core.reference import reference_divergence, reference_log_density

    dataset = target.dataset
    lo, hi = float(target.cfg.schedule.sigma_min), float(target.cfg.schedule.sigma_max)
    if score == "exact":
        def score_and_div(z: torch.Tensor, sigma: torch.Tensor):
            points, level = z.numpy(), float(sigma[0])
            return (torch.as_tensor(reference_score(dataset, points, level)),
                    torch.as_tensor(reference_divergence(dataset, points, level)))
    else:
        from dsmexp.core.kernels.conditional import ConditionalKernel

        kernel = ConditionalKernel(copy.deepcopy(target.model).double())

        def score_and_div(z: torch.Tensor, sigma: torch.Tensor):
            fwd = kernel.forward(z.T.contiguous(), sigma)
            return fwd.s.T.detach(), fwd.div.detach()

    def end_density(z: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(reference_log_density(dataset, z.numpy(), hi))

    x = torch.as_tensor(data[:LIKELIHOOD_POINTS], dtype=torch.float64)
    started = time.perf_counter()
    with torch.no_grad():
        model = pf_ode_log_likelihood(score_and_div, x, lo, hi, end_density).numpy()
    exact = reference_log_density(dataset, x.numpy(), lo)
    return {"points": len(x), "sigma_min": lo, "sigma_max": hi, "pf_ode_loglik": float(model.mean()),
            "exact_loglik": float(exact.mean()), "gap": float(exact.mean() - model.mean()),
            "gap_se": float(np.std(exact - model, ddof=1) / math.sqrt(len(x))),
            "seconds": time.perf_counter() - started}


def _save_npz(tmp: Path, samples: np.ndarray, data: np.ndarray) -> None:
    with tmp.open("wb") as f:
        np.savez(f, samples=samples, data=data)


def _plain(value):
    """JSON-ready: NaN and infinities as null (standard JSON has neither), numpy numbers as floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def summarise(per_seed: list[dict]) -> dict:
    """{"per_seed": [...], "mean": {...}, "se": {...}}: standard errors over the seeds (NaN for one)."""
    keys = sorted({k for row in per_seed for k in row})
    mean, se = {}, {}
    for key in keys:
        values = np.array([row.get(key, math.nan) for row in per_seed], dtype=float)
        mean[key] = float(np.mean(values))
        se[key] = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return {"per_seed": per_seed, "mean": mean, "se": se}
