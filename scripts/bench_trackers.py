"""What live tracking costs per step: the same run trained with logger=none, tensorboard and mlflow in
one process, the three interleaved and repeated, in a temporary directory (the MLflow file store too).

    python scripts/bench_trackers.py                          # 400 steps, M=20, 3 repeats, one thread
    python scripts/bench_trackers.py --steps 1000 noise_samples=100

Prints, per logger, the median step time (from metrics.csv's time_s) and the time spent inside the
tracker's call per step (median and mean over calls: a call can wait on a writer thread or the disk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from dsmexp.config import compose
from dsmexp.records import metrics_file
from dsmexp.train import tracking, trainer

LOGGERS = ("none", "tensorboard", "mlflow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", default=["noise_samples=20", "eval_samples=500"])
    args = parser.parse_args()
    calls: list[float] = []
    log_rows = tracking.Tracker.log_rows

    def timed(self, rows):
        start = time.perf_counter()
        log_rows(self, rows)
        calls.append((time.perf_counter() - start) / len(rows))

    tracking.Tracker.log_rows = timed
    os.chdir(tempfile.mkdtemp(prefix="bench-trackers-"))
    step_ms = {name: [] for name in LOGGERS}
    inside_median = {name: [] for name in LOGGERS}
    inside_mean = {name: [] for name in LOGGERS}
    for repeat in range(args.repeats):
        for logger in LOGGERS:
            cfg = compose([f"steps={args.steps}", "threads=1", f"logger={logger}", *args.overrides])
            calls.clear()
            run_dir = Path("outputs") / "bench" / f"{logger}-{repeat}"
            trainer.run(cfg, run_dir, threads=1)
            step_ms[logger].append(metrics_file.load_metrics(run_dir)["time_s"].diff().median() * 1e3)
            inside_median[logger].append(statistics.median(calls) * 1e3)
            inside_mean[logger].append(statistics.mean(calls) * 1e3)
    print(f"{args.steps} steps x {args.repeats} repeats, {' '.join(args.overrides)}, one thread")
    for logger in LOGGERS:
        print(f"{logger:12s} step {statistics.median(step_ms[logger]):6.2f} ms; inside the tracker "
              f"median {statistics.median(inside_median[logger]):.3f} ms, "
              f"mean {statistics.median(inside_mean[logger]):.3f} ms per step")


if __name__ == "__main__":
    main()
