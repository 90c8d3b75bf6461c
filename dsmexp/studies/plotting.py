"""What every study's figures share: the colour, label and marker of each objective (its registry row,
dsmexp/core/objectives/registry.py), and the note drawn on a panel whose runs the sweep lacks."""

from __future__ import annotations

from dsmexp.core.objectives.registry import DSM_COLOUR, ISM_COLOUR, OBJECTIVES
from dsmexp.core.objectives.registry import title as loss_title

__all__ = ["DSM_COLOUR", "ISM_COLOUR", "loss_colour", "loss_label", "loss_marker", "loss_title", "missing"]


def loss_colour(loss: str) -> str:
    return OBJECTIVES[loss].colour if loss in OBJECTIVES else "k"


def loss_label(loss: str) -> str:
    return OBJECTIVES[loss].label if loss in OBJECTIVES else loss


def loss_marker(loss: str) -> str:
    return OBJECTIVES[loss].marker if loss in OBJECTIVES else "o"


def missing(ax, what: str) -> None:
    """Say on an empty panel which runs it needs."""
    ax.text(0.5, 0.5, f"no {what} in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
