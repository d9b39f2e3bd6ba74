"""One rollout's policy overrides: what ``skynet deploy``'s options, a webhook route's ``rollout`` or the
dashboard's deploy form give a rollout instead of its release's ``skynet.yml`` (``skynet_tasks.policy``).

Every key of the policy is overridable; each is checked by the same parser as ``skynet.yml``'s, so a mistake
gives the same message (naming the flag, route key or form field, and the rule) and nothing is requested.
The values are as trusted as their author (an operator's typing, an operator's routing table, a dashboard
operator's form); the copy kept in the rollout's record is read back through the same checks.

``skynet deploy --now`` (``ignore_windows``) is not one of them: it is no policy ``skynet.yml`` could state
but an operator's exception to one, recorded in the group's audit trail with who asked, so it travels beside
the overrides (``deploys.request_build``), and a routing table cannot carry it unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from skynet_tasks.policy import (
    PolicyError,
    RolloutPolicy,
    parse_canary,
    parse_max_parallel,
    parse_min_healthy_time,
    parse_on_failure,
    parse_progress_deadline,
    parse_promote_timeout,
)
from skynet_tasks.policy_windows import WindowError, parse_windows

OVERRIDABLE = ("max_parallel", "min_healthy_time", "progress_deadline", "on_failure", "canary", "promote_timeout",
               "windows")
# The rollout's record keeps the canary's instance id as ``canary``: the canary mode is ``promotion`` there,
# as the conductor's ``Rollout`` names it.
RECORD_KEYS = {key: "promotion" if key == "canary" else key for key in OVERRIDABLE}


def _windows(value: Any, where: str) -> tuple[str, ...]:
    try:
        return parse_windows(value, where)
    except WindowError as error:
        raise PolicyError(str(error)) from None


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "max_parallel": parse_max_parallel,
    "min_healthy_time": parse_min_healthy_time,
    # 0 stays 0 (not None): it turns skynet.yml's progress deadline off.
    "progress_deadline": lambda value, where: parse_progress_deadline(value, where) or 0.0,
    "on_failure": parse_on_failure,
    "canary": parse_canary,
    "promote_timeout": parse_promote_timeout,
    "windows": _windows,
}


@dataclass(frozen=True)
class RolloutOverrides:
    """The policy one rollout takes instead of its ``skynet.yml``'s; None keeps ``skynet.yml``'s value.

    ``progress_deadline`` 0 turns ``skynet.yml``'s off; ``windows`` replace ``skynet.yml``'s (normalised lines,
    ``policy_windows.Window.text``); ``canary`` is the canary mode (``auto`` or ``manual``).
    """

    max_parallel: tuple[str, ...] | None = None
    min_healthy_time: float | None = None
    progress_deadline: float | None = None
    on_failure: str | None = None
    canary: str | None = None
    promote_timeout: float | None = None
    windows: tuple[str, ...] | None = None

    def given(self) -> dict[str, Any]:
        """The overridden keys and their values (lists for sequences), in ``OVERRIDABLE`` order."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items() if value is not None}

    def record(self) -> dict[str, Any]:
        """The overrides as the rollout's record keeps them (``from_record`` reads them back)."""
        return {RECORD_KEYS[key]: value for key, value in self.given().items()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RolloutOverrides:
        """The overrides kept in a rollout's record (checked again: a record may be changed by hand)."""
        return parse_overrides({key: record[RECORD_KEYS[key]] for key in OVERRIDABLE
                                if record.get(RECORD_KEYS[key]) is not None}, "rollout")

    def over(self, policy: RolloutPolicy) -> RolloutPolicy:
        """``policy`` (a release's ``skynet.yml``'s) with these overrides in its place."""
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if "progress_deadline" in given:
            given["progress_deadline"] = given["progress_deadline"] or None
        return replace(policy, **given)


NO_OVERRIDES = RolloutOverrides()


def typed_ramp(value: Any) -> Any:
    """A ``max_parallel`` as a person types it on one line (``1,2,25%``: a ramp) in skynet.yml's form (a list)."""
    return [part.strip() for part in value.split(",")] if isinstance(value, str) and "," in value else value


def parse_overrides(value: Any, where: str = "rollout", names: Mapping[str, str] | None = None) -> RolloutOverrides:
    """The overrides in the mapping ``value`` (``OVERRIDABLE`` keys; None values are absent); PolicyError naming
    the key (``names[key]`` when given, such as a command's flag; else ``where.key``) and the rule if invalid."""
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: expected a mapping with the key(s) {', '.join(OVERRIDABLE)}")
    unknown = sorted(str(k) for k in set(value) - set(OVERRIDABLE))
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(OVERRIDABLE)})")
    labels = names or {}
    return RolloutOverrides(**{key: _PARSERS[key](value[key], labels.get(key, f"{where}.{key}"))
                               for key in OVERRIDABLE if value.get(key) is not None})
