"""The dashboard templates' filters: times and durations as an operator reads them."""

from __future__ import annotations

import time
from typing import Any


def ago(value: Any) -> str:
    """``12s ago`` for a time in seconds since the epoch; ``–`` for anything else."""
    if not isinstance(value, int | float):
        return "–"
    return f"{max(0.0, time.time() - value):.0f}s ago"


def seconds(value: Any) -> str:
    """A duration in seconds as ``1.5s`` (or ``2.5min`` from two minutes on); ``–`` for anything else."""
    if not isinstance(value, int | float):
        return "–"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}min"


def clock(value: Any) -> str:
    """The local time of day ``HH:MM:SS`` of a time in seconds since the epoch; ``–`` for anything else."""
    if not isinstance(value, int | float):
        return "–"
    return time.strftime("%H:%M:%S", time.localtime(value))


FILTERS = {"ago": ago, "seconds": seconds, "clock": clock}
