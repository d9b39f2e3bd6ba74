"""The states of rollouts, tickets and releases.

They are written by ``skynet_tasks.ledger`` only, from decisions made by
``skynet_tasks.conductor`` (rollouts, tickets) and ``skynet_tasks.builder``
(releases); everything else only reads them.
"""

from __future__ import annotations

from enum import StrEnum


class RolloutState(StrEnum):
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
        return self in (
            RolloutState.BUILD_FAILED, RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.SUPERSEDED,
        )


class TicketState(StrEnum):
    WAITING = "waiting"
    UPDATING = "updating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"

    @property
    def finished(self) -> bool:
        return self not in (TicketState.WAITING, TicketState.UPDATING)


class ReleaseState(StrEnum):
    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"


class RolloutKind(StrEnum):
    CODE = "code"
    CONFIG = "config-update"
    AGENT = "skynet-update"


class Health(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    EMPTY = "empty"  # running, no release installed yet
