"""Run directory names: the command's overrides (as Hydra's override_dirname takes them, parsed by Hydra's
own OverridesParser) with numbers written by value, always one path component (the `dirname` resolver of
conf/config.yaml)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType


def run_dirname(overrides: Sequence[str], exclude: Sequence[str] = (), experiment: str | None = None,
                profile: str | None = None) -> str:
    """A run directory name from the command's overrides (hydra.overrides.task) minus the keys in
    `exclude` (override_dirname.exclude_keys), sorted as Hydra sorts override_dirname, and, for a single
    run, the chosen experiment and profile presets, with numbers written by value.

    `sigma=1e-2` and `sigma=0.01` name the same directory (`sigma=0.01`); whole numbers lose a trailing
    `.0`; anything that is not a number (lists, names, sweeps) is kept as typed, except that `%`, `/` and
    NUL are written %25, %2F and %00: the name is always one directory inside outputs/runs or the sweep
    directory (`model.kwargs.path=../../x` cannot name a directory elsewhere).
    """
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    chosen = sorted((o for o in parsed if o.key_or_group not in set(exclude)), key=lambda o: o.input_line)
    items = [_item(o) for o in chosen]
    presets = [f"{key}={value}" for key, value in (("experiment", experiment), ("profile", profile))
               if value is not None]
    if presets:  # a preset names the run too (hydra.run.dir); sorted by key, as Hydra sorts the overrides
        items = sorted(items + presets, key=lambda item: item.partition("=")[0])
    if not items:
        return "default"
    name = ",".join(items)
    name = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    return name.replace(".", "%2E") if name in (".", "..") else name


def _item(override: Override) -> str:
    """`key=value` as typed, a finite number as its value (1e-2 as 0.01, 1e3 as 1000)."""
    typed = override.input_line or ""
    if override.value_type != ValueType.ELEMENT:
        return typed  # a sweep or a deletion
    value = override.value()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return typed
    key = override.get_key_element()
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{key}={int(value)}"
    return f"{key}={float(value)!r}"
