"""The rollout state machine: whose turn it is, and what happens on success or failure.

This module is pure: ``decide(group, event, now, live_members)`` returns the group's next state
and the actions to carry out, and touches no AWS service. ``skynet_tasks.step`` reads the state,
calls ``decide``, writes the result with a conditional write (``skynet_tasks.ledger``) and only then
performs the actions. It decides on whatever view of the group it is given; which view suffices
for which step is the reader's business (``skynet_tasks.ledger.reads``).

The invariant everything here protects: the tickets of a group ``updating`` at any time, across
all of the group's rollouts, are of one rollout and one of its batches (``batches``), and no more
than that batch's size (its ``max_parallel``, 1 by default). Events may arrive twice, late or out
of order (SQS redelivers; moto's FIFO lock is racy), so every rule is idempotent: an event that
does not match the current state changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from skynet_tasks.conductor import batches, progress, promotion, revert, windows
from skynet_tasks.conductor.attention import UPDATE_HARD_LIMIT, believed_report_time, overdue, unacknowledged
from skynet_tasks.conductor.decisions import Decision, Dispatch, Notify
from skynet_tasks.conductor.draft import Draft
from skynet_tasks.conductor.events import (
    Event,
    OperatorAction,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.conductor.line import Group, Rollout, Ticket
from skynet_tasks.conductor.operator_actions import apply_operator
from skynet_tasks.states import RolloutState, TicketState


def decide(group: Group, event: Event, now: float, live_members: Collection[str]) -> Decision:
    """Apply one event to the group; return the new state and what to do about it.

    ``live_members`` are the instances of the group whose heartbeat is fresh, read
    by the caller right before deciding. It is consulted only when a rollout is
    published or may be complete, so the caller may pass a collection that reads
    the registry on first use.
    """
    draft = _Rules(group, now, live_members)
    if isinstance(event, RolloutReady):
        draft.rollout_ready(event.rollout)
    elif isinstance(event, TicketTaken):
        draft.ticket_taken(event.rollout_id, event.instance)
    elif isinstance(event, UpdateReported):
        draft.update_reported(event)
    elif isinstance(event, Tick):
        draft.tick()
    elif isinstance(event, OperatorAction):
        apply_operator(draft, event)
    draft.advance()
    return progress.clocked(group, draft.decision(), now)


def _held(rollout: Rollout) -> str:
    return f"ticket {rollout.held_by}" if rollout.held_by is not None else "its overdue batch"


class _Rules(Draft):
    """The rules of the line, applied to one step's draft."""

    # -- events --
    def rollout_ready(self, rollout: Rollout) -> None:
        if self.group.rollout(rollout.id) is not None:
            return  # a redelivered announcement
        tickets = (Ticket(1, rollout.canary, taken_at=self.now),) if rollout.canary else ()
        ready = replace(rollout, state=RolloutState.RUNNING, tickets=tickets, published=False,
                        created_at=rollout.created_at or self.now, last_number=len(tickets), low_water=1)
        self.put(ready, f"rollout {rollout.id} of release {rollout.release} joined the line")
        if not rollout.canary:
            self.publish(ready)
            return
        # The others line up while the canary updates: their tickets wait, and nothing but the
        # canary starts before publication (``advance``). When the canary succeeds, the next
        # ticket is dispatched in the same step, instead of after a burst of ticket requests.
        others = tuple(sorted(self.live - {rollout.canary}))
        if others:
            self.actions.append(Notify(others, rollout.id))

    def ticket_taken(self, rollout_id: str, instance: str) -> None:
        rollout = self.group.rollout(rollout_id)
        if rollout is None or rollout.state not in (RolloutState.RUNNING, RolloutState.PAUSED):
            return  # finished or unknown rollout: the member follows the newest one instead
        if rollout.ticket_of(instance) is not None:
            return  # a duplicate
        number = rollout.next_number()
        self.put(rollout.with_ticket(Ticket(number, instance, taken_at=self.now)),
                 f"ticket {number} of rollout {rollout_id} taken by {instance}")

    def update_reported(self, event: UpdateReported) -> None:
        rollout = self.group.rollout(event.rollout_id)
        ticket = rollout.ticket(event.ticket) if rollout else None
        if rollout is not None and ticket is not None and rollout.held_by == ticket.number \
                and ticket.state is not TicketState.UPDATING and ticket.instance == event.instance:
            # The late report of a ticket failed by its deadline: its instance stopped, the line may go on.
            self.put(replace(rollout, held_by=None, held_until=None),
                     f"late report of ticket {ticket.number} of rollout {rollout.id} from {ticket.instance}:"
                     f" the group's line goes on")
            return
        if rollout is None or ticket is None or ticket.state is not TicketState.UPDATING \
                or ticket.instance != event.instance:
            return  # a duplicate, or a late report of a ticket whose hold has already passed
        state = TicketState.DONE if event.ok else TicketState.FAILED
        if event.reported_at is not None:
            self.released_at = believed_report_time(event.reported_at, self.now)
        rollout = rollout.with_ticket(replace(ticket, state=state, finished_at=self.now, error=event.error))
        self.put(rollout, f"ticket {ticket.number} of rollout {rollout.id} {state} on {ticket.instance}")
        if rollout.state.finished:
            return  # aborted or superseded while this update was in flight
        if not event.ok and rollout.state is not RolloutState.HALTED:  # (a batch's second failure: halted already)
            self.halt(rollout, f"update failed on {ticket.instance} (ticket {ticket.number}): {event.error}")
        elif not rollout.published and ticket.instance == rollout.canary:
            if promotion.held_for_promotion(rollout):
                self.put(promotion.waiting(rollout, self.now), f"rollout {rollout.id} waits for promotion")
            else:
                self.publish(rollout)

    def tick(self) -> None:
        for stalled in [r for r in self.group.line if progress.stalled(r, self.now)]:
            self.halt(stalled, progress.stall_reason(stalled, self.now))
        for busy, ticket in self.group.updating_tickets():
            rollout = self.group.rollout(busy.id) or busy  # as changed by an earlier ticket of this batch
            if overdue(ticket, self.now) and ticket.deadline is not None:  # (overdue has a deadline; mypy cannot tell)
                self.overdue(rollout, ticket, ticket.deadline)
            elif unacknowledged(ticket, self.now) and rollout.state is not RolloutState.HALTED:
                # (a halted rollout sends nothing: a dispatch never received fails at its deadline)
                self.actions.append(Dispatch(ticket.instance, rollout.id, ticket.number))
        for waiting in [r for r in self.group.line if promotion.timed_out(r, self.now)]:
            self.end(waiting, RolloutState.ABORTED, promotion.timeout_reason(waiting),
                     f"rollout {waiting.id} not promoted in time: aborted")

    def overdue(self, rollout: Rollout, ticket: Ticket, deadline: float) -> None:
        error = "deadline passed: the instance did not report its update in time"
        # Held by one ticket, the line goes on at its late report; held by two of a batch, a report
        # of one says nothing of the other, so only time ends the hold.
        held_by = ticket.number if rollout.held_until is None else None
        held_until = max(deadline + UPDATE_HARD_LIMIT, rollout.held_until or 0.0)
        rollout = replace(rollout.with_ticket(replace(ticket, state=TicketState.FAILED, finished_at=self.now,
                                                      error=error)), held_by=held_by, held_until=held_until)
        self.put(rollout, f"ticket {ticket.number} of rollout {rollout.id} overdue on {ticket.instance}")
        if not rollout.state.finished and rollout.state is not RolloutState.HALTED:
            self.halt(rollout, f"ticket {ticket.number} on {ticket.instance}: {error}")

    # -- progress --
    def advance(self) -> None:
        """At a ticket boundary: supersede older rollouts, dispatch the next tickets, or complete."""
        if any(r.holds(self.now) for r in self.group.line):
            return
        busy = self.group.updating_tickets()
        if busy:
            # A batch is updating: only its own rollout may start more of it, unless a newer rollout
            # of its kind waits to supersede it at the batch's end.
            batch = self.group.rollout(busy[0][0].id)
            if batch is not None and batch.state is RolloutState.RUNNING \
                    and [r for r in self.group.line if r.kind is batch.kind][-1] is batch:
                self.start(batch)
            return
        for released in [r for r in self.group.line if r.held_until is not None]:
            self.put(replace(released, held_by=None, held_until=None),
                     f"rollout {released.id}: the hold of {_held(released)} passed")
        if not self.group.line:
            return
        # The newest rollout of each kind supersedes the older ones of its kind; rollouts of
        # different kinds (code, config, agent) share the line and take turns, oldest first.
        newest_of = {rollout.kind: rollout for rollout in self.group.line}
        for older in self.group.line:
            newest = newest_of[older.kind]
            if older is not newest and not revert.shields(older, newest):
                self.end(older, RolloutState.SUPERSEDED, f"superseded by {newest.id}",
                         f"rollout {older.id} superseded by {newest.id}", superseded_by=newest.id)
        for active in [r for r in self.group.line if r.state is RolloutState.RUNNING]:
            if self.start(active):
                return
            waiting = any(t.state is TicketState.WAITING for t in active.tickets)
            if not waiting and active.published and self._complete(active):
                self.end(active, RolloutState.COMPLETED, "completed", f"rollout {active.id} completed")

    def start(self, rollout: Rollout) -> bool:
        """Dispatch the tickets of ``rollout`` that may start now (``batches.startable``); False if none may."""
        chosen = batches.startable(rollout)
        if chosen and windows.closed(rollout, self.now):
            reason = windows.waiting_reason(rollout, self.now)
            if rollout.reason != reason:
                self.put(replace(rollout, reason=reason), f"rollout {rollout.id} {reason}")
            return False
        if chosen and windows.waits(rollout):
            rollout = replace(rollout, reason="its window opened")
        for ticket in chosen:
            started = replace(ticket, state=TicketState.UPDATING, started_at=self.now, handed_at=self.released_at,
                              # The bake is part of the update: a long one is not overdue.
                              deadline=self.now + rollout.update_timeout + rollout.min_healthy_time,
                              acknowledged_at=None, finished_at=None)
            rollout = rollout.with_ticket(started)
            # Tickets start in number order: nothing below the first still open waits any more.
            rollout = replace(rollout, low_water=batches.open_tickets(rollout)[0].number)
            self.put(rollout, f"ticket {ticket.number} of rollout {rollout.id} dispatched to {ticket.instance}")
            self.actions.append(Dispatch(ticket.instance, rollout.id, ticket.number))
        return bool(chosen)

    def _complete(self, rollout: Rollout) -> bool:
        done = {t.instance for t in rollout.tickets if t.state is TicketState.DONE}
        # A member that left the group (its heartbeat went stale) no longer holds the rollout up.
        return all(m in done or m not in self.live for m in rollout.expected)
