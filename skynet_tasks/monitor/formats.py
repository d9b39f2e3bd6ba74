"""How the dashboard's pages write times: Jinja filters (``ago``, ``seconds``, ``clock``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def ago(value: Any) -> str:
    """How long ago a timestamp was, in seconds (``–`` for no time)."""
    if not isinstance(value, int | float):
        return "–"
    return f"{max(0.0, time.time() - value):.0f}s ago"


def seconds(value: Any) -> str:
    """A duration in seconds, or minutes past two of them (``–`` for none)."""
    if not isinstance(value, int | float):
        return "–"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}min"


def clock(value: Any) -> str:
    """A timestamp's local time of day (``–`` for no time)."""
    if not isinstance(value, int | float):
        return "–"
    return time.strftime("%H:%M:%S", time.localtime(value))


FILTERS: dict[str, Callable[[Any], str]] = {"ago": ago, "seconds": seconds, "clock": clock}
