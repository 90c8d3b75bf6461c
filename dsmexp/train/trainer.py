"""One run: full-batch training with fresh noise every step, every section-4 term logged, checkpoints,
resume from the last checkpoint, and a summary. Diverging is a result; raising is a failure. A run across
a noise schedule (schedule.kind != none) trains a noise-conditional model; its step is multiscale.py's
and it also writes levels.csv."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dsmexp import safe_io
from dsmexp.config.schedule import multiscale
from dsmexp.core.conditioning import build_conditional
from dsmexp.core.datasets import build_dataset
from dsmexp.core.evaluation import EVAL_METRICS, HeldOut
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.networks import build_model
from dsmexp.core.noise import draw_noise, noise_kernel
from dsmexp.core.objectives import fused
from dsmexp.core.objectives.estimators import draw_projections
from dsmexp.core.objectives.registry import objective
from dsmexp.core.objectives.step import CPU_CHUNK, CUDA_CHUNK, step_terms
from dsmexp.core.objectives.targets import optimal_kappa
from dsmexp.core.objectives.terms import METRICS
from dsmexp.core.optimizers import build_optimizer
from dsmexp.core.reference import reference_score
from dsmexp.errors import RunFileError
from dsmexp.records import artifacts, metrics_file
from dsmexp.records.identity import check_existing_run, result_config
from dsmexp.records.levels_file import levels_before, levels_writer
from dsmexp.records.runlock import RunLock
from dsmexp.safe_io import shown_path
from dsmexp.train.allocator import keep_freed_memory
from dsmexp.train.interrupt import Interrupted, sigint_between_steps
from dsmexp.train.multiscale import ScheduleStep
from dsmexp.train.preflight import preflight
from dsmexp.train.progress import duration_text, values_text
from dsmexp.train.score_field import save_score_field
from dsmexp.train.summary import device_name, write_summary
from dsmexp.train.tracking import Tracker

log = logging.getLogger(__name__)
__all__ = ["Trainer", "prepare_cpu", "run"]
FLUSH_STEPS = {"cpu": 1, "cuda": 25}  # steps between metric copies to the host (one sync each)
PROGRESS_EVERY_S = 30.0  # without a terminal (a log file, Slurm, nohup): a progress line this often


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
    """Flush denormal floats to zero (saturated tanh layers produce them, and each costs ~100 cycles),
    keep freed memory in the process (allocator.py: a step's temporaries then do not page-fault) and set
    the thread count. Threads created afterwards inherit the flag, so call this early."""
    torch.set_flush_denormal(True)
    keep_freed_memory()
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def run(cfg: DictConfig, run_dir: Path, threads: int | None = None) -> str:
    """Train the run in run_dir, resume it from its checkpoint, or skip it when it already finished.

    Checks first (preflight: the config, this machine, the directory). The run directory is owned by
    this process while it trains (runlock.RunLock). Returns the final
    status: completed or diverged. A failure is recorded in summary.json (when the disk lets us) and
    re-raised. Ctrl-C while it trains raises Interrupted once the step in progress is logged and
    checkpointed; the same call resumes from there.
    """
    run_dir = Path(run_dir)
    finished = preflight(cfg, run_dir)  # once per process: the CLI and the sweeper may have run it
    if finished is not None:
        return _skip(run_dir, finished)
    safe_io.make_run_dir(run_dir)
    with RunLock(run_dir):
        finished = check_existing_run(cfg, run_dir)  # the lock's last holder may have finished it
        if finished is not None:
            return _skip(run_dir, finished)
        artifacts.remove_stale_temporaries(run_dir)
        if cfg.overwrite:
            artifacts.remove_run_files(run_dir)
        prepare_cpu(threads)
        trainer = None
        try:
            trainer = Trainer(cfg, run_dir)
            return trainer.fit()
        except Exception as err:
            progress = trainer.progress() if trainer is not None else {}
            error = f"{type(err).__name__}: {err}".splitlines()[0]
            try:
                write_summary(run_dir, cfg, "failed", error=error, **progress)
            except RunFileError:
                pass  # the disk that stopped the run refuses this file too; the error says what to do
            if trainer is not None:
                trainer.tracker.finish("failed", run_dir)
            raise


def _skip(run_dir: Path, summary: dict) -> str:
    log.info("%s: already %s after %d steps; skipping (overwrite=true trains it again)",
             run_dir, summary["status"], summary["steps_done"])
    return summary["status"]


class Trainer:
    """Owns the model, optimiser, noise generator and files of one run."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)
        self.seeds = Seeds.from_seed(cfg.seed)
        self.dataset = build_dataset(cfg.dataset, self.seeds.data)
        data = self.dataset.sample(self.dataset.n_samples, self.seeds.data)
        self.x = torch.as_tensor(data, dtype=self.dtype, device=self.device)
        torch.manual_seed(self.seeds.init)
        self.multiscale = multiscale(cfg)
        build = build_conditional if self.multiscale else build_model
        self.model = build(cfg.model, self.dataset.dim)
        self.model.to(device=self.device, dtype=self.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device=self.device)
        self.noise_kernel = noise_kernel(cfg)
        self.noise.manual_seed(self.seeds.noise)
        self.kernel, why = ("torch", "") if self.multiscale else fused.choose(cfg)
        self.fused = fused.FusedKernel(self.model) if self.kernel == "fused" else None
        self.torch_kernel = None
        self.schedule_step: ScheduleStep | None = None
        if self.multiscale:
            self.schedule_step = ScheduleStep(cfg, self.model, self.dataset, self.seeds.eval, self.device,
                                              self.dtype)
            why = (f"schedule.kind={cfg.schedule.kind}: the noise-conditional kernel, "
                   f"{self.schedule_step.kernel.describe()}")
            self.setup_seconds = self.schedule_step.held_out.setup_seconds
        else:
            self.torch_kernel = make_kernel(self.model, compile=cfg.compile) if self.fused is None else None
            self.held_out = HeldOut(self.dataset, data, cfg.sigma, cfg.eval_samples, self.seeds.eval,
                                    self.device, self.dtype, self.noise_kernel,
                                    likelihood=hasattr(self.model, "energy"))
            self.setup_seconds = self.held_out.setup_seconds
        log.info("kernel: %s (%s)", self.kernel, why)
        self.kept_levels: list[list[float]] = []
        self.levels_writer: metrics_file.MetricsWriter | None = None
        self.no_eval = torch.full((len(EVAL_METRICS),), math.nan, dtype=torch.float64, device=self.device)
        self.chunk = cfg.chunk_size or (CUDA_CHUNK if self.device.type == "cuda" else CPU_CHUNK)
        self.clean_score, self.kappa = None, 0.0
        row = objective(cfg.loss.name)
        if row.clean_score:  # tsm, tsm_mix: grad log p_data at the training points, once
            self.clean_score = torch.as_tensor(reference_score(self.dataset, data, 0.0), dtype=self.dtype,
                                               device=self.device)
            kappa = cfg.loss.get("kappa")
            self.kappa = (float(kappa) if kappa is not None
                          else optimal_kappa(float(np.var(data, axis=0).mean()), cfg.sigma))
        self.steps_done, self.elapsed = 0, 0.0
        self.last_row: dict[str, float] = {}
        self.diverged_step: int | None = None
        self.tracker = Tracker()  # logger=none until fit() starts the configured one

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / artifacts.CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / metrics_file.METRICS_FILE

    def fit(self) -> str:
        """Resume if a checkpoint is there, train to cfg.steps or divergence, write the end-of-run files.

        A run stopped after its last checkpoint (in the end-of-run window) resumes at cfg.steps: it
        writes the score field and summary.json from that checkpoint without training again.
        """
        kept = self._resume()
        cfg = self.cfg
        log.info("%s: loss=%s %s dataset=%s N=%d M=%d steps=%d on %s", self.run_dir, cfg.loss.name,
                 self._noise_text(), cfg.dataset.name, len(self.x),
                 cfg.noise_samples if cfg.sigma > 0 or self.multiscale else 1, cfg.steps,
                 device_name(self.device))
        log.info("held-out sample of %d points and its reference scores ready in %.2f s",
                 cfg.eval_samples, self.setup_seconds)
        self.tracker = Tracker.start(cfg.logger, self.run_dir, result_config(cfg), metrics_file.COLUMNS,
                                     self.steps_done)
        if self.multiscale:
            self.levels_writer = levels_writer(self.run_dir, self.kept_levels)
        try:
            with metrics_file.MetricsWriter(self.metrics_path, kept) as writer:
                with logging_redirect_tqdm():
                    self._loop(writer)
                self._sync(writer)
        finally:
            if self.levels_writer is not None:
                self.levels_writer.close()
        if self.diverged_step is not None:
            log.warning("diverged at step %d: loss or gradient is not finite", self.diverged_step)
            self.write_summary("diverged")
            self.tracker.finish("diverged", self.run_dir)
            return "diverged"
        self._save_checkpoint()
        self._save_score_field()
        self.write_summary("completed")
        self.tracker.finish("completed", self.run_dir)
        row = self.last_row
        log.info("completed %d steps in %.1f s: %s", self.steps_done, self.elapsed,
                 values_text(row, [*objective(cfg.loss.name).reported, "esm", "esm_data"]))
        where = shown_path(self.run_dir)
        files = ["metrics.csv", *(["levels.csv"] if self.multiscale else []), "summary.json",
                 *(["score_field.npz"] if self.dataset.dim == 2 else [])]
        log.info("results in %s (%s); dsmexp.load_metrics(%r) reads every step", where, ", ".join(files),
                 where)
        return "completed"

    def _noise_text(self) -> str:
        cfg = self.cfg
        if not self.multiscale:
            kernel = "" if self.noise_kernel.gaussian else f" noise={self.noise_kernel.describe()}"
            return f"sigma={cfg.sigma:g}{kernel}"
        s = cfg.schedule
        return (f"schedule={s.kind} levels={s.levels} sigma={s.sigma_min:g}..{s.sigma_max:g} "
                f"sampling={s.sampling} weighting={cfg.weighting}")

    def _sync(self, writer: metrics_file.MetricsWriter) -> None:
        """The rows so far on disk (metrics.csv, and levels.csv of a multi-scale run)."""
        writer.sync()
        if self.levels_writer is not None:
            self.levels_writer.sync()

    def _resume(self) -> list[list[float]]:
        """Load the checkpoint, if any; return the metrics rows it accounts for (steps 0..K-1).

        When metrics.csv does not hold exactly those rows (deleted, cut short), the checkpoint cannot be
        reported honestly: say so and train from step 0, the last state whose rows are all there.
        """
        state = artifacts.load_checkpoint(self.checkpoint_path)
        if state is None:
            return []
        kept, gap = metrics_file.rows_before(self.metrics_path, state["steps_done"])
        if gap is None and self.schedule_step is not None:
            levels = self.schedule_step.levels
            self.kept_levels, gap = levels_before(self.run_dir, state["steps_done"], levels)
        if gap is not None:
            log.warning("%s; training again from step 0", gap)
            self.kept_levels = []
            return []
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.noise.set_state(state["noise"])
        self.steps_done, self.elapsed = state["steps_done"], state["elapsed"]
        if kept:
            self.last_row = dict(zip(metrics_file.COLUMNS, kept[-1]))
        log.info("resuming %s from step %d", self.run_dir, self.steps_done)
        self._warn_if_summing_changed(state)
        return kept

    def _warn_if_summing_changed(self, state: dict) -> None:
        """One warning when a resume sums in another order than the steps before it (threads, chunk)."""
        now = {"threads": self._threads(), "chunk_size": self.chunk}
        changed = [f"{k}={state[k]} before, {v} now" for k, v in now.items()
                   if state.get(k) is not None and state[k] != v]
        if changed:
            log.warning("resuming with other summing settings (%s): the steps from %d on may differ from an "
                        "uninterrupted run in the last float digits", "; ".join(changed), self.steps_done)

    def _threads(self) -> int | None:
        return torch.get_num_threads() if self.device.type == "cpu" else None

    def _save_checkpoint(self) -> None:
        artifacts.save_checkpoint(self.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "noise": self.noise.get_state(), "steps_done": self.steps_done, "elapsed": self.elapsed,
            "threads": self._threads(), "chunk_size": self.chunk, "config": result_config(self.cfg)})

    def _loop(self, writer: metrics_file.MetricsWriter) -> None:
        cfg = self.cfg
        pending: list[tuple[int, torch.Tensor, float]] = []
        flush_every = FLUSH_STEPS.get(self.device.type, 1)
        clock = time.perf_counter() - self.elapsed
        self._progress_start = (self.steps_done, time.monotonic())
        self._next_progress = time.monotonic() + PROGRESS_EVERY_S
        noise = f"schedule={cfg.schedule.kind}" if self.multiscale else f"sigma={cfg.sigma:g}"
        desc = f"{cfg.loss.name} {noise}"
        bar = tqdm(total=cfg.steps, initial=self.steps_done, desc=desc,
                   unit="step", disable=None, dynamic_ncols=True)
        with bar, sigint_between_steps() as interrupted:
            for step in range(self.steps_done, cfg.steps):
                metrics = self._step(step)
                self.elapsed = time.perf_counter() - clock
                pending.append((step, metrics, self.elapsed))
                last = step + 1 == cfg.steps
                stop = interrupted() and not last
                if len(pending) >= flush_every or last or stop or (step + 1) % cfg.checkpoint_every == 0:
                    self._flush(pending, writer, bar)
                    pending = []
                    if self.diverged_step is not None:
                        return
                    if ((step + 1) % cfg.checkpoint_every == 0 or stop) and not last:
                        self._sync(writer)  # the rows a checkpoint counts are on disk before it is
                        self._save_checkpoint()
                    if stop:
                        log.info("interrupted after %d steps; checkpoint.pt and metrics.csv hold them",
                                 self.steps_done)
                        raise Interrupted(self.steps_done)

    def step(self, step: int) -> torch.Tensor:
        """One optimisation step exactly as training takes it (used to time objectives side by side)."""
        return self._step(step)

    def _step(self, step: int) -> torch.Tensor:
        """One optimisation step; returns the metrics (METRICS, then EVAL_METRICS) before the update."""
        cfg = self.cfg
        evaluate = step + 1 == cfg.steps or (cfg.eval_every > 0 and step % cfg.eval_every == 0)
        if self.schedule_step is not None:
            row, grad = self.schedule_step.step(self.x, self.noise, step, evaluate, self.chunk)
            for p, g in zip(self.model.parameters(), grad):
                p.grad = g
            self.optimizer.step()
            return row
        eps = None
        if cfg.sigma > 0:  # drawn feature-major, (d, M, N), and viewed as (M, N, d): no copies later
            eps = draw_noise(self.x, cfg.noise_samples, cfg.antithetic, self.noise, self.noise_kernel)
        v = None
        if objective(cfg.loss.name).estimator:  # drawn after eps, so eps (and ISM/DSM runs) stay as they were
            dim, n = self.x.shape[1], self.x.shape[0] * (cfg.noise_samples if cfg.sigma > 0 else 1)
            v = draw_projections(cfg.projection, cfg.projections, dim, n, self.noise, self.device, self.dtype)
        trained_only = cfg.diagnostics_every == 0
        diagnostics = not trained_only and step % cfg.diagnostics_every == 0
        if self.fused is not None:
            terms = self.fused.step_terms(self.x, eps, cfg.sigma, cfg.loss.name, diagnostics, self.chunk,
                                          cfg.antithetic, self.noise_kernel, self.clean_score, self.kappa)
        else:
            terms = step_terms(self.torch_kernel, self.x, eps, cfg.sigma, cfg.loss.name, diagnostics,
                               self.chunk, v=v, fd_eps=cfg.fd_eps, trained_only=trained_only,
                               clean_score=self.clean_score, kappa=self.kappa, antithetic=cfg.antithetic,
                               noise=self.noise_kernel)
        esm = self.held_out.esm(self.model) if evaluate else self.no_eval
        for p, g in zip(self.model.parameters(), terms.grad):
            p.grad = g
        self.optimizer.step()
        return torch.cat([terms.metrics, esm])

    def _flush(self, pending: list, writer: metrics_file.MetricsWriter, bar: tqdm) -> None:
        """Copy pending metrics to the host, append them to metrics.csv and send the same rows to the
        tracker, stop at the first non-finite one."""
        values = torch.stack([m for _, m, _ in pending]).cpu().tolist()
        watched = [METRICS.index("loss"), METRICS.index(objective(self.cfg.loss.name).grad_norm_column)]
        rows, level_rows = [], []
        for (step, _, elapsed), vals in zip(pending, values):
            if self.schedule_step is not None:
                vals, block = ScheduleStep.split(vals, len(metrics_file.COLUMNS) - 2)
                level_rows.extend(block)
            rows.append([step, *vals, elapsed])
            if not all(math.isfinite(vals[i]) for i in watched):
                self.diverged_step = step
                break
        writer.write(rows)
        if self.levels_writer is not None:
            self.levels_writer.write(level_rows)
        self.tracker.log_rows(rows)
        self.last_row = dict(zip(metrics_file.COLUMNS, rows[-1]))
        self.steps_done = rows[-1][0] + 1
        bar.update(len(rows))
        bar.set_postfix(loss=f"{self.last_row['loss']:.4g}")
        if bar.disable and (time.monotonic() >= self._next_progress or self.steps_done == self.cfg.steps):
            self._log_progress()

    def _log_progress(self) -> None:
        """A progress line for logs without a terminal (no tqdm bar): step, the objective's numbers, rate
        and the time left; every PROGRESS_EVERY_S seconds and at the last step."""
        self._next_progress = time.monotonic() + PROGRESS_EVERY_S
        done, total = self.steps_done, self.cfg.steps
        rate = (done - self._progress_start[0]) / max(time.monotonic() - self._progress_start[1], 1e-9)
        left = (total - done) / rate if rate > 0 else math.inf
        log.info("step %d/%d (%d%%): %s; %.1f steps/s, %s left", done, total, 100 * done // total,
                 values_text(self.last_row, objective(self.cfg.loss.name).reported), rate,
                 duration_text(left))

    def _save_score_field(self) -> None:
        """The learned score on a grid covering the data (2-D datasets only): score_field.py."""
        sigma = self.cfg.schedule.sigma_min if self.multiscale else self.cfg.sigma  # the smallest level's
        save_score_field(self.run_dir / artifacts.FIELD_FILE, self.model, self.dataset, self.x, sigma,
                         self.multiscale, self.cfg.grid_size, self.noise_kernel)

    def progress(self) -> dict:
        """How far the run got, for summary.json."""
        return {"steps_done": self.steps_done, "diverged_step": self.diverged_step, "final": self.last_row,
                "wall_time_s": self.elapsed, "device": device_name(self.device),
                "threads": self._threads(),
                "chunk_size": self.chunk, "kernel": self.kernel}

    def write_summary(self, status: str) -> None:
        write_summary(self.run_dir, self.cfg, status, **self.progress())
