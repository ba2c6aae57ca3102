"""``spillover-autoscaler``'s console-script entry point: see ``extender.entry``."""

from __future__ import annotations

from extender.entry import run

__all__ = ["autoscaler"]


def autoscaler() -> int:
    """``spillover-autoscaler``."""
    return run("autoscaler.cli")
