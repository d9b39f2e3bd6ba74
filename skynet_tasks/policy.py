"""A group's rollout policy: how many of its instances may update at once (``max_parallel``).

Written in the repository's ``skynet.yml`` (``rollout: {max_parallel: ...}``) or given for one
rollout with ``skynet deploy --max-parallel``. Both are trusted as far as their author is, but
validated strictly: a mistake gives a message naming the key and the rule, and nothing rolls out.
A rollout event's copy (``skynet_tasks.events``) is untrusted and goes through the same checks.

``max_parallel`` is, as Ansible's ``serial``, a count, a percentage of the group, or a ramp
(a list of those): each batch's size in turn, the last one repeating. The canary, when a rollout
has one, always updates alone and is not one of the batches.

``canary: manual`` holds a rollout after its canary's success until an operator promotes it
(``promote_timeout``: aborted if nobody does in time); ``windows`` (``skynet_tasks.policy_windows``)
are the maintenance windows outside which no ticket starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from skynet_tasks.policy_windows import WindowError, parse_windows

# The rollout's batch size when nothing says otherwise: one instance at a time.
DEFAULT_MAX_PARALLEL: tuple[str, ...] = ("1",)
MAX_COUNT = 10_000
MAX_RAMP = 20
POLICY_KEYS = ("max_parallel", "canary", "promote_timeout", "windows")
CANARY_MODES = ("auto", "manual")
MAX_PROMOTE_TIMEOUT = 30 * 86400
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_COUNT = re.compile(r"^\d+$")
RULE = "a count of at least 1, a percentage above 0% and at most 100% (\"25%\"), or a list of these"


class PolicyError(ValueError):
    """A rollout policy that breaks a rule; the message names the key and the rule."""


@dataclass(frozen=True)
class RolloutPolicy:
    """How a group's rollouts proceed: the batch sizes, normalised (``"2"``, ``"25%"``)."""

    max_parallel: tuple[str, ...] = DEFAULT_MAX_PARALLEL
    canary: str = "auto"
    promote_timeout: float | None = None
    windows: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The policy as a release's record keeps it (``parse_policy`` reads it back)."""
        return {"max_parallel": list(self.max_parallel), "canary": self.canary,
                **({"promote_timeout": self.promote_timeout} if self.promote_timeout is not None else {}),
                **({"windows": list(self.windows)} if self.windows else {})}


def _step(value: Any, where: str) -> str:
    """One batch size, normalised to text: ``"3"`` or ``"25%"``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PolicyError(f"{where}: {value!r} is not a batch size: expected {RULE}")
    text = str(value).strip()
    if isinstance(value, int) or _COUNT.match(text):
        count = int(text) if _COUNT.match(text) else value
        if not 1 <= int(count) <= MAX_COUNT:
            raise PolicyError(f"{where}: {value!r} is not a batch size: a count is at least 1 and at most {MAX_COUNT}")
        return str(int(count))
    match = _PERCENT.match(text)
    if match is None:
        raise PolicyError(f"{where}: {value!r} is not a batch size: expected {RULE}")
    percent = float(match.group(1))
    if not 0 < percent <= 100:
        raise PolicyError(f"{where}: {value!r} is not a batch size: a percentage is above 0% and at most 100%")
    return f"{percent:g}%"


def parse_max_parallel(value: Any, where: str = "rollout.max_parallel") -> tuple[str, ...]:
    """The batch sizes ``value`` (a count, a percentage or a list of these) says, normalised; PolicyError if invalid."""
    if value is None:
        return DEFAULT_MAX_PARALLEL
    if isinstance(value, list | tuple):
        if not value:
            raise PolicyError(f"{where}: an empty list is not a ramp: expected {RULE}")
        if len(value) > MAX_RAMP:
            raise PolicyError(f"{where}: a ramp has at most {MAX_RAMP} steps")
        return tuple(_step(v, f"{where}[{i}]") for i, v in enumerate(value))
    return (_step(value, where),)


def parse_policy(value: Any, where: str = "rollout") -> RolloutPolicy:
    """The policy in the mapping ``value`` (the ``rollout`` key of ``skynet.yml``); PolicyError if invalid."""
    if value is None:
        return RolloutPolicy()
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a mapping with the key(s) {', '.join(POLICY_KEYS)}")
    unknown = sorted(str(k) for k in set(value) - set(POLICY_KEYS))
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(POLICY_KEYS)})")
    try:
        windows = parse_windows(value.get("windows"), f"{where}.windows")
    except WindowError as error:
        raise PolicyError(str(error)) from None
    return RolloutPolicy(max_parallel=parse_max_parallel(value.get("max_parallel"), f"{where}.max_parallel"),
                         canary=parse_canary(value.get("canary"), f"{where}.canary"),
                         promote_timeout=parse_duration(value.get("promote_timeout"), f"{where}.promote_timeout"),
                         windows=windows)


def parse_canary(value: Any, where: str = "rollout.canary") -> str:
    """``auto`` (the canary's success publishes the release) or ``manual`` (an operator promotes it)."""
    if value is None:
        return "auto"
    if value not in CANARY_MODES:
        raise PolicyError(f"{where}: {value!r} is not a canary mode: expected auto or manual")
    return str(value)


def parse_duration(value: Any, where: str) -> float | None:
    """Seconds from a number or a text such as ``"90"``, ``"30m"``, ``"2h"``, ``"1d"``; None if None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PolicyError(f"{where}: {value!r} is not a duration: expected seconds or a text such as \"30m\"")
    match = _DURATION.match(str(value).strip().lower())
    if match is None:
        raise PolicyError(f"{where}: {value!r} is not a duration: expected seconds or a text such as \"30m\", \"2h\"")
    seconds = float(match.group(1)) * _UNIT[match.group(2) or "s"]
    if not 1 <= seconds <= MAX_PROMOTE_TIMEOUT:
        raise PolicyError(f"{where}: {value!r} is out of range: at least 1 s and at most 30 days")
    return seconds


def batch_sizes(max_parallel: tuple[str, ...], group_size: int) -> tuple[int, ...]:
    """Each batch's size in a group of ``group_size`` instances (the last one repeats).

    A percentage is of the whole group, rounded down but at least 1, as Ansible's ``serial``;
    no batch is larger than the group.
    """
    sizes = []
    for step in max_parallel or DEFAULT_MAX_PARALLEL:
        if step.endswith("%"):
            size = math.floor(group_size * float(step[:-1]) / 100)
        else:
            size = int(step)
        sizes.append(max(1, min(size, group_size)) if group_size > 0 else max(1, size))
    return tuple(sizes)
