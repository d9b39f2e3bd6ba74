"""What happens to a group's line: the events a conductor step decides on."""

from __future__ import annotations

from dataclasses import dataclass

from skynet_tasks.conductor.line import Rollout


@dataclass(frozen=True)
class RolloutReady:
    """A release is built (or a config/agent version is uploaded): the rollout joins the line.

    With a canary, the canary's ticket is number 1, the other members are told to
    take theirs while it updates, and the release is published (and their turns
    start) only once it succeeds; without one, the release is published at once.
    """

    rollout: Rollout


@dataclass(frozen=True)
class TicketTaken:
    """A member takes its place in a rollout's line."""

    rollout_id: str
    instance: str


@dataclass(frozen=True)
class UpdateReported:
    """An instance reports how the update of its ticket went."""

    rollout_id: str
    ticket: int
    instance: str
    ok: bool
    error: str | None = None
    # When the instance reported, by its clock: where the hand-off to the ticket this report releases starts.
    reported_at: float | None = None


@dataclass(frozen=True)
class Tick:
    """Sent by heartbeats: check deadlines, completion and lost dispatches."""


@dataclass(frozen=True)
class OperatorAction:
    """An operator pauses, resumes, aborts, retries or promotes a rollout."""

    rollout_id: str
    action: str  # pause | resume | abort | retry | promote
    actor: str = "operator"


Event = RolloutReady | TicketTaken | UpdateReported | Tick | OperatorAction

OPERATOR_ACTIONS = ("pause", "resume", "abort", "retry", "promote")
