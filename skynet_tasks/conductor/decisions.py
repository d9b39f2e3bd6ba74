"""What a conductor step decided: the group after it, and what to send."""

from __future__ import annotations

from dataclasses import dataclass, field

from skynet_tasks.conductor.line import Group, Rollout


@dataclass(frozen=True)
class Dispatch:
    """Tell ``instance`` its number came up: send it ``update(rollout_id, ticket)``."""

    instance: str
    rollout_id: str
    ticket: int


@dataclass(frozen=True)
class Notify:
    """Tell the members to take a ticket in ``rollout_id`` (its canary starts, or the release was published).

    ``again``: they were told when the rollout joined the line, and their requests may still be on
    their way: the notification is sent a little later, and a member that holds a ticket by then
    asks for none (``tasks.take_ticket``).
    """

    instances: tuple[str, ...]
    rollout_id: str
    again: bool = False


Action = Dispatch | Notify


@dataclass(frozen=True)
class Decision:
    """The group after one event, the rollouts it touched (including any that left
    the line), what to do now, and a readable account of every change."""

    group: Group
    touched: tuple[Rollout, ...] = ()
    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """True when the decision changes the group: it must be written."""
        return bool(self.notes)
