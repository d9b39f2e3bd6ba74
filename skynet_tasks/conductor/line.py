"""A maintenance group's line as data: the rollouts holding a place in it and their tickets.

Pure values: the conductor (``skynet_tasks.conductor.rules``) decides on them, and the
ledger (``skynet_tasks.ledger``) reads and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from skynet_tasks.policy import DEFAULT_MAX_PARALLEL, DEFAULT_ON_FAILURE
from skynet_tasks.states import RolloutKind, RolloutState, TicketState


@dataclass(frozen=True)
class Ticket:
    """An instance's place in a rollout's line, and how its update went."""

    number: int
    instance: str
    state: TicketState = TicketState.WAITING
    taken_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    error: str | None = None
    acknowledged_at: float | None = None
    attempts: int = 1
    # When its turn was handed on: the report that released it (by the reporter's clock), else the dispatch.
    handed_at: float | None = None


@dataclass(frozen=True)
class Rollout:
    """Taking a group to one release: its state and the tickets of its line."""

    id: str
    group: str
    release: str
    kind: RolloutKind = RolloutKind.CODE
    state: RolloutState = RolloutState.RUNNING
    created_at: float = 0.0
    canary: str | None = None
    published: bool = False
    # The members that were live at publication: it completes once those still live are done.
    # A view of part of the line leaves it empty (``skynet_tasks.ledger.reads``).
    expected: tuple[str, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    update_timeout: float = 300.0
    reason: str | None = None
    finished_at: float | None = None
    superseded_by: str | None = None
    # The highest ticket number issued, and the lowest ticket that may still be waiting or
    # updating: kept in the rollout's record so that a step reads only the tickets it needs.
    last_number: int = 0
    low_water: int = 1
    # A ticket failed by its deadline may still be updating on its instance (its message may have
    # started late): nothing else in the group starts before ``held_until``, or before that
    # ticket's late report arrives.
    held_by: int | None = None
    held_until: float | None = None
    # Its batch sizes (``skynet_tasks.policy``: counts or percentages of the group), as the rollout
    # was created with them, and the counts they come to in its group, fixed at publication.
    max_parallel: tuple[str, ...] = DEFAULT_MAX_PARALLEL
    batches: tuple[int, ...] = ()
    # Its bake (seconds an updated instance stays healthy before its ticket is done: part of the
    # ticket's deadline) and its progress deadline (``progress``), as the rollout was created with them;
    # ``progress_at``: when its progress clock last started (its first dispatch, an instance healthy).
    min_healthy_time: float = 0.0
    progress_deadline: float | None = None
    progress_at: float | None = None
    # What its failure does (``skynet_tasks.policy.ON_FAILURE``), and the automatic revert it started,
    # or (on a revert rollout) the halted rollout it reverts (``skynet_tasks.conductor.revert``).
    on_failure: str = DEFAULT_ON_FAILURE
    reverted_by: str | None = None
    revert_of: str | None = None
    # Manual promotion (``promotion``): "auto" or "manual", the seconds an operator has to promote it
    # (None: no limit), and when its canary's success started the wait.
    promotion: str = "auto"
    promote_timeout: float | None = None
    promotable_at: float | None = None
    # Its maintenance windows (``windows``: normalised lines; none: any time), and ``skynet deploy --now``.
    windows: tuple[str, ...] = ()
    ignore_windows: bool = False

    def ticket(self, number: int) -> Ticket | None:
        """The ticket numbered ``number``, if this rollout holds it."""
        for ticket in self.tickets:
            if ticket.number == number:
                return ticket
        return None

    def ticket_of(self, instance: str) -> Ticket | None:
        """The ticket ``instance`` holds in this rollout, if any."""
        for ticket in self.tickets:
            if ticket.instance == instance:
                return ticket
        return None

    def with_ticket(self, ticket: Ticket) -> Rollout:
        """This rollout with ``ticket`` added, or replacing the one of its number."""
        others = tuple(t for t in self.tickets if t.number != ticket.number)
        return replace(self, tickets=tuple(sorted((*others, ticket), key=lambda t: t.number)),
                       last_number=max(self.last_number, ticket.number))

    def next_number(self) -> int:
        """The number the next ticket taken gets."""
        return max(self.last_number, *(t.number for t in self.tickets), 0) + 1

    def holds(self, now: float) -> bool:
        """True while a ticket failed by its deadline may still be updating: the line waits."""
        return self.held_until is not None and now < self.held_until


@dataclass(frozen=True)
class Group:
    """A maintenance group and the rollouts holding a place in its line, oldest first."""

    name: str
    version: int = 0
    desired_release: str | None = None
    desired_rollout: str | None = None
    previous_release: str | None = None
    line: tuple[Rollout, ...] = ()

    def rollout(self, rollout_id: str) -> Rollout | None:
        """The rollout ``rollout_id`` of the line, if it is in it."""
        for rollout in self.line:
            if rollout.id == rollout_id:
                return rollout
        return None

    def updating(self) -> tuple[Rollout, Ticket] | None:
        """The first ticket updating in the group and its rollout; None when none is."""
        busy = self.updating_tickets()
        return busy[0] if busy else None

    def updating_tickets(self) -> tuple[tuple[Rollout, Ticket], ...]:
        """Every ticket updating in the group, with its rollout (all of one rollout's batch)."""
        return tuple((rollout, ticket) for rollout in self.line for ticket in rollout.tickets
                     if ticket.state is TicketState.UPDATING)
