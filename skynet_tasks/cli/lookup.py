"""The rollouts an operator names on the command line, read from the ledger; an unknown one is an input error.

Trust: rollout ids and group names come from the operator's command line and are checked for shape
before they reach a DynamoDB key; everything read back is the ledger's own record.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from skynet_tasks import names
from skynet_tasks.cli.exitcodes import InputError
from skynet_tasks.cli.progress import Progress, progress
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry
from skynet_tasks.states import RolloutState
from skynet_tasks.status import rollout_summary

# Rollout ids are ``r<yyyymmdd>-<hhmmss>-<hex>`` (buildrequest.new_rollout_id) or made by the config and
# agent pushes: letters, digits and a few separators, never longer than this.
ROLLOUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_rollout_id(value: str) -> str:
    """``value`` if it can be a rollout id; an input error otherwise."""
    if not ROLLOUT_ID.fullmatch(value):
        raise InputError(f"{value!r} is not a rollout id")
    return value


def check_group(value: str) -> str:
    """``value`` if it can be a group name; an input error otherwise."""
    try:
        return names.check_name_part("group", value)
    except ValueError as error:
        raise InputError(str(error)) from None


@dataclass
class RolloutReader:
    """Reads rollouts for the CLI: whole, as progress, or a group's history."""

    ledger: Ledger
    registry: Registry
    env: str

    def summary(self, rollout_id: str) -> dict[str, Any] | None:
        """The rollout as ``skynet status --json`` shows it, with its expected members; None if there is none."""
        view = self.ledger.rollout_view(check_rollout_id(rollout_id))
        if view is None:
            return None
        summary = rollout_summary(view)
        summary["expected"] = view.get("expected")
        return summary

    def require(self, rollout_id: str) -> dict[str, Any]:
        """The rollout's summary; an input error (exit 4) if there is no such rollout."""
        summary = self.summary(rollout_id)
        if summary is None:
            raise InputError(f"no rollout {rollout_id}")
        return summary

    def require_group(self, group: str) -> dict[str, Any]:
        """The group's item; an input error if the ledger has no such group."""
        info = self.ledger.group_info(check_group(group))
        if not info:
            raise InputError(f"no group {group}")
        return info

    def history(self, group: str, limit: int) -> list[dict[str, Any]]:
        """The group's latest ``limit`` rollouts, newest first; an input error for an unknown group."""
        self.require_group(group)
        found = (self.summary(rollout_id) for rollout_id in reversed(self.ledger.recent_rollouts(group, limit)))
        return [s for s in found if s is not None]

    def latest(self, group: str) -> str:
        """The id of the group's newest rollout; an input error if the group is unknown or has none."""
        self.require_group(group)
        recent = self.ledger.recent_rollouts(group, 1)
        if not recent:
            raise InputError(f"group {group} has no rollout")
        return recent[-1]

    def progress(self, summary: dict[str, Any], now: float | None = None) -> Progress:
        """The progress of the rollout ``summary`` describes, with its build's record and its group's size."""
        release = self.ledger.release(summary["group"], summary["release"]) \
            if summary["state"] == RolloutState.BUILDING else None
        members = 0 if summary.get("expected") else \
            sum(e.group == summary["group"] for e in self.registry.endpoints(self.env))
        return progress(summary, release, time.time() if now is None else now, members)
