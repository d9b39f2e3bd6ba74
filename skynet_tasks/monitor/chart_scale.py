"""What the dashboard's charts share: their colours, how they label seconds and where an axis puts its ticks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The page's own state colours (dashboard.css), so a chart and the table beside it agree.
GREEN = "#18794e"
RED = "#c0392b"
BLUE = "#1f5fbf"
AMBER = "#d08c00"
GREY = "#c8ccd2"
DARK_GREY = "#8a9099"
LIGHT_BLUE = "#8fb8ef"
# Releases other than a group's desired one, in order of first appearance.
PALETTE = ("#1f5fbf", "#a66a00", "#7a3fb0", "#0f8a8a", "#b34d7a", "#5b6b2f")

TICKET_FILLS = {"done": GREEN, "failed": RED, "updating": BLUE, "waiting": GREY, "cancelled": AMBER,
                "superseded": AMBER}
ROLLOUT_FILLS = {"completed": GREEN, "halted": RED, "build_failed": RED, "aborted": RED, "running": BLUE,
                 "building": BLUE, "paused": AMBER, "superseded": AMBER}
# Axis steps a reader takes in at a glance: seconds, then minutes, then hours.
STEPS = (0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


@dataclass(frozen=True)
class Tick:
    """A labelled mark on an axis, at ``at`` user units along it."""

    at: float
    label: str


def number(value: Any) -> float | None:
    """``value`` as a float if it is a number (ledger fields may be missing or of any type), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def seconds_label(value: float) -> str:
    """``value`` seconds as a short label: ``0s``, ``0.4s``, ``12s``, ``3.5min``, ``2.0h``."""
    if value == 0:
        return "0s"
    if value < 10:
        return f"{value:.1f}s"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.1f}min"
    return f"{value / 3600:.1f}h"


def nice_step(span: float, most: int = 6) -> float:
    """The smallest of ``STEPS`` that cuts ``span`` seconds into at most ``most`` intervals."""
    return next((step for step in STEPS if span / step <= most), STEPS[-1] * max(1.0, span / (STEPS[-1] * most)))


def ticks(span: float, length: float, most: int = 6) -> tuple[Tick, ...]:
    """Ticks every nice step from 0 to ``span`` seconds along an axis ``length`` units long."""
    span = max(span, 1e-9)
    step = nice_step(span, most)
    count = int(span / step + 1e-9)
    return tuple(Tick(round(i * step / span * length, 2), seconds_label(i * step)) for i in range(count + 1))
