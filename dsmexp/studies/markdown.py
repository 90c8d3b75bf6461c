"""Markdown helpers the studies' reports share."""

from __future__ import annotations

from collections.abc import Iterable

SMOKE_PROFILE = "smoke"


def smoke_caveat(profiles: Iterable[str]) -> list[str]:
    """A warning at the top of a report whose runs include the smoke profile: runs of a few steps that
    check the pipeline, whose numbers and verdicts are not evidence of anything."""
    if SMOKE_PROFILE not in set(profiles):
        return []
    return ["> **Smoke profile: not evidence.** These runs take a few dozen steps to check that the pipeline "
            "works end to end; their numbers and verdicts say nothing about the objectives. Use the quick or "
            "paper profile for results.", ""]
