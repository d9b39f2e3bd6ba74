"""A rollout's ticket timeline as a chart: one bar per ticket, from taken to acknowledged to finished.

Input is the rollout view ``monitor.data.summarize`` makes from the ledger (its fields were
written by instances and conductors: untrusted, kept as raw strings for the templates to escape,
and any time that is not a number is treated as missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skynet_tasks.monitor.chart_scale import (
    AMBER,
    BLUE,
    GREEN,
    GREY,
    LIGHT_BLUE,
    RED,
    TICKET_FILLS,
    Tick,
    number,
    seconds_label,
    ticks,
)

WIDTH = 760.0
LABEL_WIDTH = 190.0  # left of the plot: "#12 instance-id"
ROW = 24.0
BAR = 14.0
TOP = 6.0
AXIS = 44.0  # tick labels, then the legend
RIGHT = 70.0  # right of the plot: an open end and the canary mark
MIN_WIDTH = 2.0  # a ticket that failed at once still shows a red sliver
OPEN_STATES = ("waiting", "updating")
LEGEND = (("waiting", GREY), ("hand-off", LIGHT_BLUE), ("done", GREEN), ("updating", BLUE), ("failed", RED),
          ("cancelled", AMBER))


@dataclass(frozen=True)
class Segment:
    """One phase of a ticket: ``waiting`` in line, ``handoff`` (started until the instance acknowledged), ``update``."""

    phase: str
    x: float
    width: float
    fill: str
    seconds: float


@dataclass(frozen=True)
class TicketBar:
    """A ticket's row: its phases left to right; ``open`` when it is not over (drawn up to now, with no end)."""

    number: int
    instance: str
    state: str
    y: float
    segments: tuple[Segment, ...]
    canary: bool
    open: bool
    end_x: float
    title: str


@dataclass(frozen=True)
class Timeline:
    """The chart of one rollout: ``bars`` in ticket order, on a time axis starting at the first ticket taken."""

    rollout_id: str
    width: float
    height: float
    plot_x: float
    plot_width: float
    axis_y: float
    bars: tuple[TicketBar, ...]
    ticks: tuple[Tick, ...]
    span: float
    legend: tuple[tuple[str, str], ...] = LEGEND


def _times(ticket: dict[str, Any]) -> list[float]:
    return [t for t in (number(ticket.get(k)) for k in ("taken_at", "started_at", "acknowledged_at",
                                                        "finished_at")) if t is not None and t > 0]


def _phases(ticket: dict[str, Any], now: float) -> list[tuple[str, float, float, str]]:
    """(phase, start, end, fill) of a ticket, in time order, each end at or after its start."""
    state = str(ticket.get("state"))
    known = _times(ticket)
    if not known:
        return []
    taken = number(ticket.get("taken_at")) or known[0]
    started, acknowledged = number(ticket.get("started_at")), number(ticket.get("acknowledged_at"))
    finished = number(ticket.get("finished_at"))
    stop = now if state in OPEN_STATES else (finished if finished is not None else max(known))
    if started is None:
        # Never dispatched: waited in line, then was cancelled or superseded (or waits still).
        return [("waiting", taken, max(taken, stop), AMBER if state in ("cancelled", "superseded") else GREY)]
    phases = [("waiting", taken, max(taken, started), GREY)]
    update_from = started
    if acknowledged is not None and acknowledged >= started:
        phases.append(("handoff", started, acknowledged, LIGHT_BLUE))
        update_from = acknowledged
    phases.append(("update", update_from, max(update_from, stop), TICKET_FILLS.get(state, GREY)))
    return phases


def _title(ticket: dict[str, Any], phases: list[tuple[str, float, float, str]], canary: bool) -> str:
    spent = ", ".join(f"{name} {seconds_label(end - start)}" for name, start, end, _ in phases)
    text = f"#{ticket.get('number')} {ticket.get('instance')}{' (canary)' if canary else ''}: {ticket.get('state')}"
    text += f"; {spent}" if spent else ""
    return text + (f"; {ticket['error']}" if ticket.get("error") else "")


def rollout_timeline(rollout: dict[str, Any], now: float) -> Timeline:
    """The timeline chart of ``rollout`` (a summarized rollout view) as it stands at ``now``.

    One bar per ticket in number order; the canary's bar (the ticket of the rollout's
    ``canary`` instance) marked; a failed ticket's update red; a ticket not over yet drawn to
    ``now`` and left open.
    """
    tickets = sorted((t for t in rollout.get("tickets", []) if isinstance(t.get("number"), int)),
                     key=lambda t: t["number"])
    phases = [_phases(t, now) for t in tickets]
    starts = [start for ph in phases for _, start, _, _ in ph]
    ends = [end for ph in phases for _, _, end, _ in ph]
    origin = min(starts) if starts else now
    span = max((max(ends) if ends else now) - origin, 1.0)
    plot_width = WIDTH - LABEL_WIDTH - RIGHT
    scale = plot_width / span
    canary = rollout.get("canary")
    bars = []
    for row, (ticket, ticket_phases) in enumerate(zip(tickets, phases, strict=True)):
        segments = tuple(
            Segment(name, round(LABEL_WIDTH + (start - origin) * scale, 2),
                    round(max((end - start) * scale, MIN_WIDTH if name == "update" else 0.0), 2), fill,
                    round(end - start, 3))
            for name, start, end, fill in ticket_phases)
        is_canary = canary is not None and ticket.get("instance") == canary
        end_x = segments[-1].x + segments[-1].width if segments else LABEL_WIDTH
        bars.append(TicketBar(ticket["number"], str(ticket.get("instance")), str(ticket.get("state")),
                              TOP + row * ROW, segments, is_canary, str(ticket.get("state")) in OPEN_STATES,
                              round(end_x, 2), _title(ticket, ticket_phases, is_canary)))
    axis_y = TOP + len(bars) * ROW + 4
    return Timeline(str(rollout.get("id")), WIDTH, axis_y + AXIS, LABEL_WIDTH, plot_width, axis_y, tuple(bars),
                    ticks(span, plot_width), round(span, 3))
