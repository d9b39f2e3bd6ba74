"""The states of rollouts, tickets and releases.

They are written by ``skynet_tasks.ledger`` only, from decisions made by
``skynet_tasks.conductor`` (rollouts, tickets) and ``skynet_tasks.builder``
(releases); everything else only reads them.
"""

from __future__ import annotations

from enum import StrEnum


class RolloutState(StrEnum):
    """Where a rollout is: building, running its tickets, stopped by a failure or an operator, or over."""

    BUILDING = "building"
    BUILD_FAILED = "build_failed"
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    COMPLETED = "completed"
    ABORTED = "aborted"
    SUPERSEDED = "superseded"

    @property
    def finished(self) -> bool:
        """Whether the rollout is over for good (it cannot run again)."""
        return self in (
            RolloutState.BUILD_FAILED, RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.SUPERSEDED,
        )


class TicketState(StrEnum):
    """Where one instance's ticket in a rollout is."""

    WAITING = "waiting"
    UPDATING = "updating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"

    @property
    def finished(self) -> bool:
        """Whether the ticket is over (neither waiting nor updating)."""
        return self not in (TicketState.WAITING, TicketState.UPDATING)


class ReleaseState(StrEnum):
    """Whether a release's build is running, succeeded or failed."""

    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"


class RolloutKind(StrEnum):
    """What a rollout delivers: code, configuration, or the agent itself."""

    CODE = "code"
    CONFIG = "config-update"
    AGENT = "skynet-update"


class Health(StrEnum):
    """An instance's health as the endpoints table records it."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    EMPTY = "empty"  # running, no release installed yet
