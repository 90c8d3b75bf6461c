"""One run: full-batch training with fresh noise every step, every section-4 term logged, checkpoints,
resume from the last checkpoint, and a summary. Diverging is a result; raising is a failure."""

from __future__ import annotations

import functools
import logging
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

import dsmexp
from dsmexp import artifacts, fused
from dsmexp.config import ConfigError, validate
from dsmexp.data import build_dataset
from dsmexp.divergence import make_kernel
from dsmexp.evaluation import EVAL_METRICS, HeldOut
from dsmexp.models import ScoreMLP
from dsmexp.objectives import METRICS, step_terms
from dsmexp.reference import ReferenceUnavailable, reference_score

log = logging.getLogger(__name__)

# Keys that change how fast a run goes but not its numbers; runs that differ only here are the same run.
NON_RESULT_KEYS = ("device", "threads", "overwrite", "chunk_size", "compile", "kernel", "checkpoint_every")
CPU_CHUNK = 16384  # points per chunk on CPU, the fastest in scripts/bench.py on 2 cores (8k-32k are close)
CUDA_CHUNK = 1 << 20
FLUSH_STEPS = {"cpu": 1, "cuda": 25}  # steps between metric copies to the host (one sync each)


@dataclass(frozen=True)
class Seeds:
    """Independent streams derived from the one user seed."""

    data: int
    init: int
    noise: int
    eval: int

    @classmethod
    def from_seed(cls, seed: int) -> Seeds:
        return cls(*(int(s) for s in np.random.SeedSequence(seed).generate_state(4)))


def prepare_cpu(threads: int | None = None) -> None:
    """Flush denormal floats to zero (saturated tanh layers produce them, and each costs ~100 cycles)
    and set the thread count. Threads created afterwards inherit the flag, so call this early."""
    torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def result_config(cfg: DictConfig) -> dict:
    """The resolved config minus the keys that do not change the numbers (NON_RESULT_KEYS)."""
    keys = [k for k in cfg if k not in NON_RESULT_KEYS and k != "hydra"]
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in keys}


def build_optimizer(params, cfg: DictConfig) -> torch.optim.Optimizer:
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def run(cfg: DictConfig, run_dir: Path, threads: int | None = None) -> str:
    """Train the run in run_dir, resume it from its checkpoint, or skip it when it already finished.

    Returns the final status: completed or diverged. A failure is recorded in summary.json and re-raised.
    """
    validate(cfg)
    run_dir = Path(run_dir)
    check_existing_run(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.overwrite:
        artifacts.remove_run_files(run_dir)
    summary = artifacts.read_summary(run_dir)
    if summary is not None and summary["status"] in artifacts.FINISHED:
        log.info("%s: already %s after %d steps; skipping (overwrite=true trains it again)",
                 run_dir, summary["status"], summary["steps_done"])
        return summary["status"]
    prepare_cpu(threads)
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir)
        return trainer.fit()
    except Exception as err:
        progress = trainer.progress() if trainer is not None else {}
        error = f"{type(err).__name__}: {err}".splitlines()[0]
        write_summary(run_dir, cfg, "failed", error=error, **progress)
        raise


def check_existing_run(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to touch a directory that holds a run with other settings (unless overwrite=true).

    Called before Hydra writes anything for a job (command line, sweeper) and again by run().
    """
    if cfg.overwrite:
        return
    run_dir = Path(run_dir)
    summary = artifacts.read_summary(run_dir)
    stored = summary.get("config") if summary else None
    what = "summary.json"
    if stored is None:
        state = artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT_FILE)
        stored, what = (state["config"] if state else None), "checkpoint.pt"
    if stored is None:
        return
    stored = {k: v for k, v in stored.items() if k not in NON_RESULT_KEYS}
    current = result_config(cfg)
    defaults = _schema_defaults()
    # a key the stored run predates counts as its default value (runs stay valid as the schema grows)
    differing = sorted(k for k in set(stored) | set(current)
                       if stored.get(k, defaults.get(k)) != current.get(k))
    if differing:
        raise ConfigError(
            f"{run_dir} holds a run with other settings ({', '.join(differing)} differ, per its {what}); "
            "pass overwrite=true to replace it, or choose another hydra.run.dir / hydra.sweep.dir")


def _schema_defaults() -> dict:
    """Top-level schema defaults (plain values only), for runs stored before a key existed."""
    from dsmexp.config import Config

    schema = OmegaConf.structured(Config)
    return {k: schema[k] for k in schema if not OmegaConf.is_missing(schema, k)
            and not OmegaConf.is_config(schema[k])}


class Trainer:
    """Owns the model, optimiser, noise generator and files of one run."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)
        self.seeds = Seeds.from_seed(cfg.seed)
        self.dataset = build_dataset(cfg.dataset)
        data = self.dataset.sample(self.dataset.n_samples, self.seeds.data)
        self.x = torch.as_tensor(data, dtype=self.dtype, device=self.device)
        torch.manual_seed(self.seeds.init)
        self.model = ScoreMLP(self.dataset.dim, cfg.model.hidden, cfg.model.activation)
        self.model.to(device=self.device, dtype=self.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(self.seeds.noise)
        self.kernel, why = fused.choose(cfg)
        log.info("kernel: %s (%s)", self.kernel, why)
        self.step_terms = (fused.FusedKernel(self.model).step_terms if self.kernel == "fused" else
                           functools.partial(step_terms, make_kernel(self.model, compile=cfg.compile)))
        self.held_out = HeldOut(self.dataset, data, cfg.sigma, cfg.eval_samples, self.seeds.eval,
                                self.device, self.dtype)
        self.no_eval = torch.full((len(EVAL_METRICS),), math.nan, dtype=torch.float64, device=self.device)
        self.chunk = cfg.chunk_size or (CUDA_CHUNK if self.device.type == "cuda" else CPU_CHUNK)
        self.steps_done, self.elapsed = 0, 0.0
        self.last_row: dict[str, float] = {}
        self.diverged_step: int | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / artifacts.CHECKPOINT_FILE

    def fit(self) -> str:
        """Resume if a checkpoint is there, train to cfg.steps or divergence, write the end-of-run files."""
        self._resume()
        cfg = self.cfg
        log.info("%s: loss=%s sigma=%g dataset=%s N=%d M=%d steps=%d on %s", self.run_dir, cfg.loss.name,
                 cfg.sigma, cfg.dataset.name, len(self.x), cfg.noise_samples if cfg.sigma > 0 else 1,
                 cfg.steps, _device_name(self.device))
        log.info("held-out sample of %d points and its reference scores ready in %.2f s",
                 cfg.eval_samples, self.held_out.setup_seconds)
        writer = artifacts.MetricsWriter(self.run_dir / artifacts.METRICS_FILE, self.steps_done)
        with logging_redirect_tqdm():
            self._loop(writer)
        if self.diverged_step is not None:
            log.warning("diverged at step %d: loss or gradient is not finite", self.diverged_step)
            self.write_summary("diverged")
            return "diverged"
        self._save_checkpoint()
        self._save_score_field()
        self.write_summary("completed")
        row = self.last_row
        log.info("completed %d steps in %.1f s: loss=%.6g fit_ism=%.6g fit_dsm=%.6g esm=%.4g esm_data=%.4g",
                 self.steps_done, self.elapsed, row["loss"], row["fit_ism"], row["fit_dsm"], row["esm"],
                 row["esm_data"])
        return "completed"

    def _resume(self) -> None:
        state = artifacts.load_checkpoint(self.checkpoint_path)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.noise.set_state(state["noise"])
        self.steps_done, self.elapsed = state["steps_done"], state["elapsed"]
        log.info("resuming %s from step %d", self.run_dir, self.steps_done)

    def _save_checkpoint(self) -> None:
        artifacts.save_checkpoint(self.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "noise": self.noise.get_state(), "steps_done": self.steps_done, "elapsed": self.elapsed,
            "config": result_config(self.cfg)})

    def _loop(self, writer: artifacts.MetricsWriter) -> None:
        cfg = self.cfg
        pending: list[tuple[int, torch.Tensor, float]] = []
        flush_every = FLUSH_STEPS.get(self.device.type, 1)
        clock = time.perf_counter() - self.elapsed
        bar = tqdm(total=cfg.steps, initial=self.steps_done, desc=f"{cfg.loss.name} sigma={cfg.sigma:g}",
                   unit="step", disable=None, dynamic_ncols=True)
        with bar:
            for step in range(self.steps_done, cfg.steps):
                metrics = self._step(step)
                self.elapsed = time.perf_counter() - clock
                pending.append((step, metrics, self.elapsed))
                last = step + 1 == cfg.steps
                if len(pending) >= flush_every or last or (step + 1) % cfg.checkpoint_every == 0:
                    self._flush(pending, writer, bar)
                    pending = []
                    if self.diverged_step is not None:
                        return
                    if (step + 1) % cfg.checkpoint_every == 0 and not last:
                        self._save_checkpoint()

    def _step(self, step: int) -> torch.Tensor:
        """One optimisation step; returns the metrics (METRICS, then EVAL_METRICS) before the update."""
        cfg = self.cfg
        eps = None
        if cfg.sigma > 0:  # drawn feature-major, (d, M, N), and viewed as (M, N, d): no copies later
            shape = (self.x.shape[1], cfg.noise_samples, self.x.shape[0])
            eps = torch.randn(shape, generator=self.noise, device=self.device, dtype=self.dtype)
            eps = eps.permute(1, 2, 0)
        diagnostics = step % cfg.diagnostics_every == 0
        terms = self.step_terms(self.x, eps, cfg.sigma, cfg.loss.name, diagnostics, self.chunk)
        evaluate = step + 1 == cfg.steps or (cfg.eval_every > 0 and step % cfg.eval_every == 0)
        esm = self.held_out.esm(self.model) if evaluate else self.no_eval
        for p, g in zip(self.model.parameters(), terms.grad):
            p.grad = g
        self.optimizer.step()
        return torch.cat([terms.metrics, esm])

    def _flush(self, pending: list, writer: artifacts.MetricsWriter, bar: tqdm) -> None:
        """Copy pending metrics to the host, append them to metrics.csv, stop at the first non-finite one."""
        values = torch.stack([m for _, m, _ in pending]).cpu().tolist()
        watched = [METRICS.index("loss"), METRICS.index(_trained_grad_norm(self.cfg.loss.name))]
        rows = []
        for (step, _, elapsed), vals in zip(pending, values):
            rows.append([step, *vals, elapsed])
            if not all(math.isfinite(vals[i]) for i in watched):
                self.diverged_step = step
                break
        writer.write(rows)
        self.last_row = dict(zip(artifacts.COLUMNS, rows[-1]))
        self.steps_done = rows[-1][0] + 1
        bar.update(len(rows))
        bar.set_postfix(loss=f"{self.last_row['loss']:.4g}")

    def _save_score_field(self) -> None:
        """The learned score on a grid covering the data (2-D datasets only)."""
        if self.dataset.dim != 2:
            return
        data = self.x.cpu().double().numpy()
        grid_x, grid_y = (_axis(data[:, i], self.cfg.grid_size) for i in range(2))
        xx, yy = np.meshgrid(grid_x, grid_y, indexing="xy")
        grid = np.stack([xx.ravel(), yy.ravel()], 1)
        shape = (len(grid_y), len(grid_x), 2)
        with torch.no_grad():
            points = torch.as_tensor(grid, dtype=self.dtype, device=self.device)
            score = self.model(points).cpu().double().numpy().reshape(shape)
        try:
            reference = reference_score(self.dataset, grid, self.cfg.sigma).reshape(shape)
        except ReferenceUnavailable:
            reference = np.full(shape, math.nan)
        artifacts.save_score_field(self.run_dir / artifacts.FIELD_FILE, dict(
            grid_x=grid_x, grid_y=grid_y, score=score, reference=reference, data=data))

    def progress(self) -> dict:
        """How far the run got, for summary.json."""
        return {"steps_done": self.steps_done, "diverged_step": self.diverged_step, "final": self.last_row,
                "wall_time_s": self.elapsed, "device": _device_name(self.device),
                "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
                "chunk_size": self.chunk, "kernel": self.kernel}

    def write_summary(self, status: str) -> None:
        write_summary(self.run_dir, self.cfg, status, **self.progress())


def write_summary(run_dir: Path, cfg: DictConfig, status: str, error: str | None = None,
                  steps_done: int = 0, diverged_step: int | None = None, final: dict | None = None,
                  wall_time_s: float = 0.0, device: str = "", threads: int | None = None,
                  chunk_size: int | None = None, kernel: str | None = None) -> None:
    """summary.json: status (completed, diverged, failed), progress, final metrics, what the numbers
    depend on beyond the config (threads, chunk size, kernel, source commit, versions), and the config."""
    artifacts.write_json(Path(run_dir) / artifacts.SUMMARY_FILE, {
        "status": status, "steps_done": steps_done, "steps": cfg.steps, "diverged_step": diverged_step,
        "error": error, "final": final or {}, "wall_time_s": wall_time_s, "device": device,
        "threads": threads, "chunk_size": chunk_size, "kernel": kernel, "commit": source_commit(),
        "seed": cfg.seed, "versions": _versions(), "config": result_config(cfg)})


@functools.cache
def source_commit() -> str | None:
    """The git commit of the dsmexp source that runs (with -dirty for uncommitted edits), if it is in git."""
    root = Path(dsmexp.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _trained_grad_norm(loss: str) -> str:
    return "grad_norm_ism" if loss == "ism" else "grad_norm_dsm"


def _axis(values: np.ndarray, size: int) -> np.ndarray:
    """Grid coordinates spanning the data with a 10% margin on each side."""
    lo, hi = values.min(), values.max()
    margin = 0.1 * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - margin, hi + margin, size)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def _versions() -> dict[str, str]:
    import hydra
    return {"dsmexp": dsmexp.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "hydra": hydra.__version__}
