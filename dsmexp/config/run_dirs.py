"""Run directory names: Hydra's override_dirname with numbers written by value, always one path component
(the `dirname` resolver of conf/config.yaml)."""

from __future__ import annotations

import math


def run_dirname(overrides: str, experiment: str | None = None, profile: str | None = None) -> str:
    """A run directory name from Hydra's override_dirname (and, for a single run, the chosen experiment
    and profile presets), with numbers written by value.

    `sigma=1e-2` and `sigma=0.01` name the same directory (`sigma=0.01`); whole numbers lose a trailing
    `.0`; anything that is not a number (lists, names) is kept as typed, except that `%`, `/` and NUL
    are written %25, %2F and %00: the name is always one directory inside outputs/runs or the sweep
    directory (`model.kwargs.path=../../x` cannot name a directory elsewhere).
    """
    items = _split_items(overrides) if overrides else []
    presets = [f"{key}={value}" for key, value in (("experiment", experiment), ("profile", profile))
               if value is not None]
    if presets:  # a preset names the run too (hydra.run.dir); sorted by key, as Hydra sorts the overrides
        items = sorted(items + presets, key=lambda item: item.partition("=")[0])
    if not items:
        return "default"
    name = ",".join(_canonical_item(item) for item in items)
    name = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    return name.replace(".", "%2E") if name in (".", "..") else name


def _split_items(text: str) -> list[str]:
    """Split `a=1,b=[2,3],c=x` at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _canonical_item(item: str) -> str:
    key, sep, value = item.partition("=")
    try:
        number = float(value)
    except ValueError:
        return item
    if not math.isfinite(number) or value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return item
    if number.is_integer() and abs(number) < 1e15:
        return f"{key}{sep}{int(number)}"
    return f"{key}{sep}{number!r}"
