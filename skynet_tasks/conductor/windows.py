"""Maintenance windows in time: whether a rollout's windows are open now, and when they next open.

Pure arithmetic on the windows a rollout carries (``Rollout.windows``: the normalised lines of
``skynet_tasks.policy_windows``) and the step's ``now`` (seconds since the epoch): no clock is read
here. A window opens on each of its days at its start as the wall clock of its time zone reads (so on
a day the clocks change it still opens at 09:00 local time), and closes at its end, on the next day
when it crosses midnight. Outside every window no ticket starts (``rules``); an update in flight
finishes; ``skynet deploy --now`` sets ``Rollout.ignore_windows``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from skynet_tasks.conductor.line import Rollout
from skynet_tasks.policy_windows import DAY, Window, window_from_text, zone

WAITING = "waiting for its window"
# A window has at least one day a week: its next opening is less than 8 days ahead.
_HORIZON_DAYS = 8


def spans(window: Window, now: float, ahead: int = _HORIZON_DAYS) -> Iterator[tuple[float, float]]:
    """The (start, end) times of the window's openings from the day before ``now``'s to ``ahead`` days after it."""
    tz = zone(window.tz)
    today = datetime.fromtimestamp(now, tz).date()
    end = window.end if window.end > window.start else window.end + DAY
    for offset in range(-1, ahead):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        # Wall-clock arithmetic: an aware datetime plus a timedelta keeps the wall time, and .timestamp()
        # applies the offset in force at that wall time (a window shortened by a DST jump is shorter).
        opens, closes = (midnight + timedelta(seconds=window.start)).timestamp(), \
            (midnight + timedelta(seconds=end)).timestamp()
        if closes > opens:
            yield opens, closes


def is_open(windows: tuple[str, ...], now: float) -> bool:
    """True when ``now`` is inside one of ``windows`` (always, when there are none)."""
    if not windows:
        return True
    # An opening that holds ``now`` started on its day or the day before (it crosses midnight at most once).
    return any(opens <= now < closes for text in windows for opens, closes in spans(window_from_text(text), now, 1))


def next_opening(windows: tuple[str, ...], now: float) -> float | None:
    """When one of ``windows`` is next open: ``now`` if one is, else its next start (None if there are none)."""
    if is_open(windows, now):
        return now
    starts = [opens for text in windows for opens, _ in spans(window_from_text(text), now) if opens > now]
    return min(starts) if starts else None


def closed(rollout: Rollout, now: float) -> bool:
    """The rollout may not start a ticket now: it has windows, none is open, and no ``--now`` overrides them."""
    return bool(rollout.windows) and not rollout.ignore_windows and not is_open(rollout.windows, now)


def waiting_reason(rollout: Rollout, now: float) -> str:
    """What the rollout's record says while it waits for a window: when the next one opens (UTC)."""
    opens = next_opening(rollout.windows, now)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(opens)) if opens is not None else "never"
    return f"{WAITING}, opens at {when}"


def waits(rollout: Rollout) -> bool:
    """The rollout's record says it waits for a window (set by ``rules`` when a window kept a ticket back)."""
    return bool(rollout.reason and rollout.reason.startswith(WAITING))


def opened(rollout: Rollout, now: float) -> bool:
    """The rollout waits for a window that is now open: a tick starts its tickets."""
    return waits(rollout) and not closed(rollout, now)
