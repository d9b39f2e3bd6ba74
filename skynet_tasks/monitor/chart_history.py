"""A group's rollouts over time as a chart: each rollout's duration, and the hand-off latency of its tickets.

Input is the group's recent rollouts as ``monitor.data.summarize`` makes them (with each
ticket's ``handoff``: from the end of the ticket before to the instance acknowledging its
own). Fields come from the ledger (untrusted): non-numbers count as missing, strings stay raw
for the templates to escape.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from skynet_tasks.monitor.chart_scale import BLUE, GREY, ROLLOUT_FILLS, number, seconds_label

WIDTH = 760.0
PLOT_X = 56.0  # left of the plot: the value axis's labels
PANEL = 110.0  # one panel's plot height
GAP = 44.0  # below each panel: time labels, then the next panel's title
TOP = 20.0
SLOT_MAX = 48.0
OPEN_STATES = ("building", "running", "paused", "halted")


@dataclass(frozen=True)
class Column:
    """One rollout in a panel: a column ``value`` seconds high (None: nothing to show, no column drawn)."""

    rollout_id: str
    state: str
    x: float
    width: float
    y: float
    height: float
    fill: str
    value: float | None
    open: bool
    label: str
    title: str


@dataclass(frozen=True)
class Panel:
    """One measure over the group's rollouts, oldest left: its title, top value, columns and baseline."""

    key: str
    title: str
    top: float
    top_label: str
    y: float
    baseline: float
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class History:
    """The history chart of one group: a ``duration`` panel and a ``handoff`` panel over the same rollouts."""

    group: str
    width: float
    height: float
    plot_x: float
    plot_width: float
    panels: tuple[Panel, ...]


def _handoffs(rollout: dict[str, Any]) -> list[float]:
    return [h for h in (number(t.get("handoff")) for t in rollout.get("tickets", [])) if h is not None]


def _top(values: list[float]) -> float:
    # Headroom above the tallest column, and never a zero scale.
    return max(max(values, default=0.0) * 1.1, 1.0)


def _when(rollout: dict[str, Any]) -> str:
    created = number(rollout.get("created_at"))
    return time.strftime("%m-%d %H:%M:%S", time.localtime(created)) if created is not None else "–"


def _panel(key: str, title: str, rollouts: list[dict[str, Any]], values: list[float | None],
           fills: list[str], titles: list[str], y: float, plot_width: float) -> Panel:
    top = _top([v for v in values if v is not None])
    slot = plot_width / max(len(rollouts), 1)
    width = min(slot * 0.7, SLOT_MAX)
    columns = []
    for index, (rollout, value, fill, text) in enumerate(zip(rollouts, values, fills, titles, strict=True)):
        height = 0.0 if value is None else round(max(value / top * PANEL, 1.0), 2)
        state = str(rollout.get("state"))
        columns.append(Column(str(rollout.get("id")), state, round(PLOT_X + index * slot + (slot - width) / 2, 2),
                              round(width, 2), round(y + PANEL - height, 2), height, fill, value,
                              key == "duration" and state in OPEN_STATES and rollout.get("finished_at") is None,
                              _when(rollout), text))
    return Panel(key, title, round(top, 3), seconds_label(top), y, y + PANEL, tuple(columns))


def group_history(group: str, rollouts: list[dict[str, Any]]) -> History:
    """The history chart of ``group`` from its recent rollouts (any order; drawn oldest first).

    Duration columns are coloured by the rollout's outcome, and left open while it is not over;
    the hand-off column of a rollout is the median of its tickets' hand-offs (none: no column).
    """
    ordered = sorted(rollouts, key=lambda r: number(r.get("created_at")) or 0.0)
    plot_width = WIDTH - PLOT_X - 12
    durations = [number(r.get("duration")) for r in ordered]
    medians = [statistics.median(h) if (h := _handoffs(r)) else None for r in ordered]
    duration_titles = [f"{r.get('id')}: {r.get('state')}, {seconds_label(d) if d is not None else 'no duration'}"
                       for r, d in zip(ordered, durations, strict=True)]
    handoff_titles = [f"{r.get('id')}: median hand-off {seconds_label(m)}, max {seconds_label(max(_handoffs(r)))}, "
                      f"{len(_handoffs(r))} tickets" if m is not None else f"{r.get('id')}: no hand-off measured"
                      for r, m in zip(ordered, medians, strict=True)]
    panels = (
        _panel("duration", "rollout duration", ordered, durations,
               [ROLLOUT_FILLS.get(str(r.get("state")), GREY) for r in ordered], duration_titles, TOP, plot_width),
        _panel("handoff", "hand-off latency (median per rollout)", ordered, medians,
               [BLUE] * len(ordered), handoff_titles, TOP + PANEL + GAP, plot_width),
    )
    return History(group, WIDTH, TOP + 2 * PANEL + GAP + 24, PLOT_X, plot_width, panels)
