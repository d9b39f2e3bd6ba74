"""Maintenance windows as ``skynet.yml`` writes them (``rollout: {windows: [...]}``): parsed and validated.

A window is cron-like days, hours of the day and a time zone::

    windows:
      - {days: "mon-fri", hours: "09:00-17:00", tz: "Europe/Paris"}
      - {days: "sat", hours: "22:00-02:00"}        # crosses midnight: Saturday 22:00 to Sunday 02:00

``days``: day names (``mon`` … ``sun``, or whole names), ranges (``mon-fri``, ``fri-mon`` wraps),
comma-separated, or ``*`` (every day, the default). ``hours``: ``HH:MM-HH:MM`` (seconds allowed,
``HH:MM:SS``); an end before the start crosses midnight into the next day, ``24:00`` is the end of the
day; the default is the whole day. ``tz``: an IANA time zone name (default ``UTC``), read with the
standard library's ``zoneinfo``. A window opens on each of its days at its start, as the wall clock of
its time zone reads.

A window may also be written on one line, ``DAYS HOURS [TZ]`` (``"mon-fri 09:00-17:00 Europe/Paris"``,
``"sat,sun 00:00-24:00"``): ``skynet deploy --window`` takes it so, and records keep windows so.

The text is as trusted as its author (the repository's ``skynet.yml``, a rollout's record, a message):
everything is checked here, a mistake names the key and the rule. The arithmetic is in
``skynet_tasks.conductor.windows``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG = {name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                           "sunday"))}
WINDOW_KEYS = ("days", "hours", "tz")
MAX_WINDOWS = 50
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
DAY = 86400


class WindowError(ValueError):
    """A window that breaks a rule; the message names the key and the rule."""


@dataclass(frozen=True)
class Window:
    """One maintenance window: its days (0 is Monday), its start and end in seconds of the day (an end
    at or before the start is on the next day), and its time zone."""

    days: tuple[int, ...]
    start: int
    end: int
    tz: str

    def text(self) -> str:
        """The window as one line (``mon,tue 09:00:00-17:00:00 Europe/Paris``), which ``window_from_text`` reads."""
        return f"{','.join(DAYS[d] for d in self.days)} {_clock(self.start)}-{_clock(self.end)} {self.tz}"


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _day(name: str, where: str) -> int:
    key = name.strip().lower()
    if key in DAYS:
        return DAYS.index(key)
    if key in _LONG:
        return _LONG[key]
    raise WindowError(f"{where}: unknown day {name.strip()!r}: expected one of {', '.join(DAYS)}")


def parse_days(value: Any, where: str) -> tuple[int, ...]:
    """The days ``value`` names (``"mon-fri"``, ``"sat,sun"``, ``"fri-mon"``, ``"*"``), Monday first."""
    if value is None:
        return tuple(range(7))
    if not isinstance(value, str) or len(value) > 200:
        raise WindowError(f"{where}: expected day names or ranges such as \"mon-fri\" or \"sat,sun\"")
    days: set[int] = set()
    for part in value.split(","):
        if part.strip() in ("*", "daily"):
            days.update(range(7))
        elif "-" in part:
            first, _, last = part.partition("-")
            start, end = _day(first, where), _day(last, where)
            days.update(d % 7 for d in range(start, end + (7 if end < start else 0) + 1))
        elif part.strip():
            days.add(_day(part, where))
    if not days:
        raise WindowError(f"{where}: no days: the window would never open")
    return tuple(sorted(days))


def _seconds(text: str, where: str) -> int:
    match = _CLOCK.match(text.strip())
    if match is None:
        raise WindowError(f"{where}: {text.strip()!r} is not a time of day: expected HH:MM or HH:MM:SS")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if minutes > 59 or seconds > 59 or hours > 24 or (hours == 24 and (minutes or seconds)):
        raise WindowError(f"{where}: {text.strip()!r} is out of range: hours 00 to 23 (or 24:00), minutes and "
                          f"seconds 00 to 59")
    return hours * 3600 + minutes * 60 + seconds


def parse_hours(value: Any, where: str) -> tuple[int, int]:
    """The start and end (seconds of the day) ``value`` says (``"09:00-17:00"``; ``"22:00-02:00"`` crosses
    midnight); the whole day if None."""
    if value is None:
        return 0, DAY
    if not isinstance(value, str) or value.count("-") != 1 or len(value) > 40:
        raise WindowError(f"{where}: expected a start and an end such as \"09:00-17:00\"")
    first, _, last = value.partition("-")
    start, end = _seconds(first, where), _seconds(last, where)
    if start == DAY:
        raise WindowError(f"{where}: a window starts at 23:59:59 at the latest (24:00 is an end)")
    if start == end % DAY and end != DAY:
        raise WindowError(f"{where}: {value!r} is zero hours long: the window would never open "
                          f"(the whole day is \"00:00-24:00\")")
    return start, end


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (an IANA name, checked by ``parse_tz``)."""
    return ZoneInfo(name)


def parse_tz(value: Any, where: str) -> str:
    """The IANA time zone name ``value`` (UTC if None), checked against the system's zone database."""
    if value is None:
        return "UTC"
    if not isinstance(value, str) or not value or len(value) > 64 or value.startswith(("/", ".")) or ".." in value:
        raise WindowError(f"{where}: {value!r} is not a time zone: expected an IANA name such as \"Europe/Paris\"")
    try:
        zone(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise WindowError(f"{where}: unknown time zone {value!r}: expected an IANA name such as "
                          f"\"Europe/Paris\"") from None
    return value


def parse_window(value: Any, where: str) -> Window:
    """The window the mapping ``value`` describes; WindowError naming ``where`` and the rule if it is invalid."""
    if not isinstance(value, dict):
        raise WindowError(f"{where}: expected a mapping with the key(s) {', '.join(WINDOW_KEYS)}")
    unknown = sorted(str(k) for k in set(value) - set(WINDOW_KEYS))
    if unknown:
        raise WindowError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(WINDOW_KEYS)})")
    start, end = parse_hours(value.get("hours"), f"{where}.hours")
    return Window(parse_days(value.get("days"), f"{where}.days"), start, end, parse_tz(value.get("tz"), f"{where}.tz"))


def parse_windows(value: Any, where: str = "rollout.windows") -> tuple[str, ...]:
    """The windows of the list ``value``, each as its normalised line (``Window.text``); () if None (any time)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise WindowError(f"{where}: expected a list of windows such as "
                          f"[{{days: \"mon-fri\", hours: \"09:00-17:00\", tz: \"Europe/Paris\"}}]")
    if not value:
        raise WindowError(f"{where}: an empty list would never open: leave windows out to roll out any time")
    if len(value) > MAX_WINDOWS:
        raise WindowError(f"{where}: at most {MAX_WINDOWS} windows")
    return tuple(parse_window(_as_mapping(v, f"{where}[{i}]"), f"{where}[{i}]").text() for i, v in enumerate(value))


def _as_mapping(value: Any, where: str) -> Any:
    """A window given as one line, ``DAYS HOURS [TZ]`` (``skynet deploy --window``, and ``Window.text`` as records
    and messages carry it), as a mapping; anything else as it is."""
    if isinstance(value, str):
        parts = value.split()
        if len(parts) not in (2, 3):
            raise WindowError(f"{where}: {value!r} is not a window: expected days, hours and an optional time zone "
                              f"such as \"mon-fri 09:00-17:00 Europe/Paris\"")
        return dict(zip(WINDOW_KEYS, parts, strict=False))
    return value


@lru_cache(maxsize=256)
def window_from_text(text: str) -> Window:
    """The window of a normalised line (``Window.text``); WindowError if it is not one."""
    return parse_window(_as_mapping(text, "window"), "window")
