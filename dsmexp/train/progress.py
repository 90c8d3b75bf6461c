"""The words of a run's progress and last lines (trainer.py): metric values and the time left."""

from __future__ import annotations

import math


def values_text(row: dict, columns: list[str]) -> str:
    """`name=value` for the columns that have a value (a metric not computed is left out, not nan)."""
    return " ".join(f"{c}={row[c]:.6g}" for c in columns if c in row and math.isfinite(row[c]))


def duration_text(seconds: float) -> str:
    """"1 h 02 min", "3 min 05 s", "40 s", or "unknown time"."""
    if not math.isfinite(seconds):
        return "unknown time"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
