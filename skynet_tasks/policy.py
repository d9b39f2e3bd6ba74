"""A group's rollout policy: how many of its instances may update at once (``max_parallel``), how long
an updated instance must stay healthy before the next one's turn (``min_healthy_time``), how long
a rollout may go without an instance becoming healthy (``progress_deadline``), and what a failure
does (``on_failure``: halt, or halt and revert the instances that moved).

Written in the repository's ``skynet.yml`` (``rollout: {max_parallel: ...}``) or given for one rollout
instead (``skynet_tasks.policy_overrides``: ``skynet deploy``'s options, a webhook route, the dashboard).
Both are trusted as far as their author is, but validated strictly: a mistake gives a message naming
the key and the rule, and nothing rolls out. A rollout event's copy (``skynet_tasks.events``) is untrusted
and goes through the same checks.

``max_parallel`` is, as Ansible's ``serial``, a count, a percentage of the group, or a ramp
(a list of those): each batch's size in turn, the last one repeating. The canary, when a rollout
has one, always updates alone and is not one of the batches.

``min_healthy_time`` and ``progress_deadline`` are durations, as Nomad's ``update`` block has them:
seconds (``30``) or text (``"30s"``, ``"2m"``, ``"1h"``). ``min_healthy_time`` (0 by default: no bake)
fits in the update task with the update itself (``check_timing``); ``progress_deadline`` (none by
default) is longer than one ticket's own deadline, or no slow ticket could ever be told from a stall.

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
POLICY_KEYS = ("max_parallel", "min_healthy_time", "progress_deadline", "on_failure", "canary", "promote_timeout",
               "windows")
# The longest an update task runs (its soft time limit, ``conductor.attention.UPDATE_HARD_LIMIT`` - 20 s):
# the update and its bake run in it together.
UPDATE_TASK_SECONDS = 580.0
MAX_PROGRESS_DEADLINE = 7 * 86400.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DURATION_RULE = "a number of seconds of at least 0, or a duration such as \"30s\", \"2m\", \"1h\" or \"1d\""
# What a failed update (or a passed deadline) does to a published code rollout: halt it, or halt it
# and revert the instances that moved to the group's previous release (``skynet_tasks.conductor.revert``).
ON_FAILURE = ("halt", "revert")
DEFAULT_ON_FAILURE = "halt"
CANARY_MODES = ("auto", "manual")
MAX_PROMOTE_TIMEOUT = 30 * 86400.0
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_COUNT = re.compile(r"^\d+$")
RULE = "a count of at least 1, a percentage above 0% and at most 100% (\"25%\"), or a list of these"


class PolicyError(ValueError):
    """A rollout policy that breaks a rule; the message names the key and the rule."""


@dataclass(frozen=True)
class RolloutPolicy:
    """How a group's rollouts proceed: the batch sizes, normalised (``"2"``, ``"25%"``)."""

    max_parallel: tuple[str, ...] = DEFAULT_MAX_PARALLEL
    # Seconds an updated instance keeps passing its health check before its ticket is done (0: no bake).
    min_healthy_time: float = 0.0
    # Seconds a rollout may go without an instance becoming healthy in it before it halts (None: no limit).
    progress_deadline: float | None = None
    on_failure: str = DEFAULT_ON_FAILURE
    canary: str = "auto"
    promote_timeout: float | None = None
    windows: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The policy as a release's record keeps it (``parse_policy`` reads it back)."""
        return {"max_parallel": list(self.max_parallel), "canary": self.canary, "on_failure": self.on_failure,
                "min_healthy_time": self.min_healthy_time,
                **({"progress_deadline": self.progress_deadline} if self.progress_deadline is not None else {}),
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


def parse_duration(value: Any, where: str) -> float:
    """Seconds in ``value`` (a number of seconds, or text such as ``"30s"``, ``"2m"``); PolicyError if invalid."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PolicyError(f"{where}: {value!r} is not a duration: expected {DURATION_RULE}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.strip())
        if match is None:
            raise PolicyError(f"{where}: {value!r} is not a duration: expected {DURATION_RULE}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds >= 0 or math.isinf(seconds):  # (also refuses NaN)
        raise PolicyError(f"{where}: {value!r} is not a duration: it is at least 0 and finite")
    return seconds


def parse_min_healthy_time(value: Any, where: str = "rollout.min_healthy_time") -> float:
    """The bake time ``value`` says, in seconds (0 when absent); PolicyError if invalid."""
    if value is None:
        return 0.0
    seconds = parse_duration(value, where)
    if seconds > UPDATE_TASK_SECONDS:
        raise PolicyError(f"{where}: {value!r} is longer than an update may run ({UPDATE_TASK_SECONDS:.0f}s)")
    return seconds


def parse_progress_deadline(value: Any, where: str = "rollout.progress_deadline") -> float | None:
    """The progress deadline ``value`` says, in seconds (None when absent or 0, as in Nomad); PolicyError if invalid."""
    if value is None:
        return None
    seconds = parse_duration(value, where)
    if seconds > MAX_PROGRESS_DEADLINE:
        raise PolicyError(f"{where}: {value!r} is longer than {MAX_PROGRESS_DEADLINE / 86400:.0f} days")
    return seconds or None


def check_timing(min_healthy_time: float, progress_deadline: float | None, update_timeout: float,
                 where: str = "rollout") -> None:
    """PolicyError unless the bake and the progress deadline fit the release's ``update_timeout``.

    The bake continues the update's health check within its task, so it is no longer than the update
    timeout and both fit in the task's time limit; a progress deadline is longer than a ticket's own
    deadline (update and bake), as Nomad's is longer than its ``healthy_deadline``.
    """
    if min_healthy_time > update_timeout:
        raise PolicyError(f"{where}.min_healthy_time: {min_healthy_time:g}s is longer than the update timeout "
                          f"({update_timeout:g}s): the bake is at most update_timeout")
    if min_healthy_time and min_healthy_time + update_timeout > UPDATE_TASK_SECONDS:
        raise PolicyError(f"{where}.min_healthy_time: {min_healthy_time:g}s with the update timeout "
                          f"({update_timeout:g}s) is longer than an update may run ({UPDATE_TASK_SECONDS:.0f}s)")
    ticket = update_timeout + min_healthy_time
    if progress_deadline is not None and progress_deadline <= ticket:
        raise PolicyError(f"{where}.progress_deadline: {progress_deadline:g}s is not longer than one ticket's "
                          f"deadline ({ticket:g}s: update_timeout plus min_healthy_time)")


def parse_on_failure(value: Any, where: str = "rollout.on_failure") -> str:
    """What ``value`` says a failure does (``halt`` or ``revert``); PolicyError if it is anything else."""
    if value is None:
        return DEFAULT_ON_FAILURE
    if not isinstance(value, str) or value.strip() not in ON_FAILURE:
        raise PolicyError(f"{where}: {value!r} is not a failure policy: expected one of {', '.join(ON_FAILURE)}")
    return value.strip()


def parse_policy(value: Any, where: str = "rollout", update_timeout: float | None = None) -> RolloutPolicy:
    """The policy in the mapping ``value`` (the ``rollout`` key of ``skynet.yml``); PolicyError if invalid.

    With ``update_timeout`` (the release's), its durations are also checked against it (``check_timing``).
    """
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
    policy = RolloutPolicy(
        max_parallel=parse_max_parallel(value.get("max_parallel"), f"{where}.max_parallel"),
        min_healthy_time=parse_min_healthy_time(value.get("min_healthy_time"), f"{where}.min_healthy_time"),
        progress_deadline=parse_progress_deadline(value.get("progress_deadline"), f"{where}.progress_deadline"),
        on_failure=parse_on_failure(value.get("on_failure"), f"{where}.on_failure"),
        canary=parse_canary(value.get("canary"), f"{where}.canary"),
        promote_timeout=parse_promote_timeout(value.get("promote_timeout"), f"{where}.promote_timeout"),
        windows=windows)
    if update_timeout is not None:
        check_timing(policy.min_healthy_time, policy.progress_deadline, update_timeout, where)
    return policy


def parse_canary(value: Any, where: str = "rollout.canary") -> str:
    """``auto`` (the canary's success publishes the release) or ``manual`` (an operator promotes it)."""
    if value is None:
        return "auto"
    if value not in CANARY_MODES:
        raise PolicyError(f"{where}: {value!r} is not a canary mode: expected auto or manual")
    return str(value)


def parse_promote_timeout(value: Any, where: str = "rollout.promote_timeout") -> float | None:
    """How long a manual rollout may wait for its promotion, in seconds (None: for ever); PolicyError if invalid."""
    if value is None:
        return None
    seconds = parse_duration(value, where)
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
