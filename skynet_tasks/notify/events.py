"""What a conductor step did to its rollouts, as notices for people: started, published, halted, reverted,
resumed, completed, aborted, superseded.

Pure: a function of the group before the step and the decision written, so each step yields each
notice once (a redelivered event decides nothing new, and so notifies nothing). A notice read back from
a message (``from_message``) is untrusted and checked field by field.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from skynet_tasks.conductor import Decision, Group, Rollout
from skynet_tasks.states import RolloutKind, RolloutState

MAX_TEXT = 500  # a reason is an operator's or the conductor's sentence; longer is not a notice's business


class NoticeKind(StrEnum):
    """What happened to a rollout."""

    STARTED = "started"
    PUBLISHED = "published"
    HALTED = "halted"
    REVERTED = "reverted"
    RESUMED = "resumed"
    COMPLETED = "completed"
    ABORTED = "aborted"
    SUPERSEDED = "superseded"


# A rollout's new state, as the notice it gives (paused is not worth telling; halted is).
_BY_STATE = {RolloutState.HALTED: NoticeKind.HALTED, RolloutState.COMPLETED: NoticeKind.COMPLETED,
             RolloutState.ABORTED: NoticeKind.ABORTED, RolloutState.SUPERSEDED: NoticeKind.SUPERSEDED}


class BadNotice(ValueError):
    """A notice message that is not one Skynet sends."""


@dataclass(frozen=True)
class Notice:
    """One thing that happened to one rollout, with what a reader needs to know which and where."""

    kind: NoticeKind
    rollout_id: str
    group: str
    release: str
    rollout_kind: RolloutKind
    state: RolloutState
    at: float
    reason: str | None = None
    revert: bool = False

    @property
    def key(self) -> str:
        """The notice's own id, the same every time it is sent (a receiver's deduplication key)."""
        return hashlib.sha256(f"{self.rollout_id}:{self.kind}:{self.state}".encode()).hexdigest()[:32]

    def to_message(self) -> dict[str, Any]:
        """The notice as a message's JSON payload."""
        return {**asdict(self), "kind": str(self.kind), "rollout_kind": str(self.rollout_kind),
                "state": str(self.state)}


def _marked_revert(rollout: Rollout) -> bool:
    # A revert rollout (``skynet_tasks.conductor.revert``) names the halted rollout it reverts.
    return rollout.revert_of is not None


def _has_revert(rollout: Rollout) -> bool:
    # A halted rollout whose automatic revert started names it.
    return rollout.reverted_by is not None


def _notice(kind: NoticeKind, rollout: Rollout, now: float) -> Notice:
    return Notice(kind=kind, rollout_id=rollout.id, group=rollout.group, release=rollout.release,
                  rollout_kind=rollout.kind, state=rollout.state, at=now,
                  reason=rollout.reason[:MAX_TEXT] if rollout.reason else None,
                  revert=_marked_revert(rollout))


def _change(old: Rollout, rollout: Rollout) -> NoticeKind | None:
    """The notice a change of ``old`` into ``rollout`` (its state, its reason) gives, if any."""
    if _has_revert(rollout) and not _has_revert(old):
        return NoticeKind.REVERTED
    if rollout.state is old.state:
        return None
    if rollout.state in _BY_STATE:
        return _BY_STATE[rollout.state]
    if rollout.state is RolloutState.RUNNING and old.state is RolloutState.HALTED:
        return NoticeKind.RESUMED
    return None


def notices(before: Group, decision: Decision, now: float) -> tuple[Notice, ...]:
    """The notices of ``decision``, taken on ``before``: each touched rollout's changes worth telling, in order.

    A rollout joining the line has started (a revert rollout's notices are marked ``revert``); one that
    halts and starts its automatic revert was reverted; otherwise its new state says what happened.
    """
    was = {rollout.id: rollout for rollout in before.line}
    found: list[Notice] = []
    for rollout in decision.touched:
        old = was.get(rollout.id)
        if old is None:
            if rollout.state.finished:
                continue  # joined and ended in one step: no rollout ran
            found.append(_notice(NoticeKind.STARTED, rollout, now))  # (a revert rollout's notices say revert)
            # What the same step did next (a rollout without a canary is published at once).
            old = replace(rollout, published=False, state=RolloutState.RUNNING, reason=rollout.reason)
        if rollout.published and not old.published:
            found.append(_notice(NoticeKind.PUBLISHED, rollout, now))
        change = _change(old, rollout)
        if change is not None:
            found.append(_notice(change, rollout, now))
    return tuple(found)


def _text(message: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = message.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise BadNotice(f"notice field {key!r}: expected text of 1 to {MAX_TEXT} characters")
    return value


def from_message(message: Any) -> Notice:
    """The notice a message carries (untrusted: every field is checked); BadNotice if it is not one."""
    if not isinstance(message, dict):
        raise BadNotice("a notice is a JSON object")
    try:
        kind, state = NoticeKind(str(message.get("kind"))), RolloutState(str(message.get("state")))
        rollout_kind = RolloutKind(str(message.get("rollout_kind")))
    except ValueError as error:
        raise BadNotice(f"notice: {error}") from None
    at = message.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise BadNotice("notice field 'at': expected a time in seconds")
    return Notice(kind=kind, rollout_id=str(_text(message, "rollout_id")), group=str(_text(message, "group")),
                  release=str(_text(message, "release")), rollout_kind=rollout_kind, state=state, at=float(at),
                  reason=_text(message, "reason", optional=True), revert=message.get("revert") is True)
