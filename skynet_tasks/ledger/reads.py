"""The read strategy of a conductor step: which view of the group suffices to decide an event.

A step usually needs a handful of tickets, whatever the group's size: the one updating, the
next waiting, the one after it (whose holder is told to prepare when the next one starts:
``batches.newly_next``), and the one its event names. ``Reader.read_and_decide`` reads just those (a
partial view, ``partial_view`` says which) so that a step costs the same in a group of 1,000
as in a group of 3, and reads every ticket only when the step needs them:

- Some events need every ticket whatever the state (``focus_of`` returns None): the canary's
  failed report halts, and an operator's resume, retry or abort reopens or ends every ticket.
  Those are read whole at once: a partial read would only be thrown away (and the longer step
  would more often lose its conditional write to the steps decided next to it). The canary's
  success publishes, on the partial view unless publication needs more (``EVERY_TICKET``).
- Several events decided in one step (a run of ticket requests, ``conductor.fold``) are read
  partially when they are ticket requests of one rollout (``focus_of_all``: the view then holds
  each requester's ticket), else whole; each is checked as one event would be.
- Otherwise the conductor decides on the partial view, and ``needs_every_ticket`` looks at what
  it decided: a rollout published, halted, ended or resumed (``EVERY_TICKET``) changes or
  consults tickets the view may not hold, so the step is read whole and decided again.
  Anything else (a ticket taken, a success and the next dispatch, a pause, a redispatch) was
  decided on tickets the view holds, so it is the decision a full view gives.

The conductor knows nothing of this: it decides on the view it is given. The model test
(``tests/test_conductor_model.py``) checks, for random histories, that every decision this
strategy keeps from a partial view is the one the full view gives.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from skynet_tasks.conductor import (
    Decision,
    Event,
    Group,
    Notify,
    OperatorAction,
    Rollout,
    Ticket,
    TicketTaken,
    UpdateReported,
    batches,
)
from skynet_tasks.conductor.fold import combined, each, fold
from skynet_tasks.states import RolloutState, TicketState

# The open window of a rollout of one ticket at a time (the one updating, the next, the one after it); a batch's
# is larger (``open_window``).
OPEN_WINDOW = 3
_OPEN_STATES = (TicketState.WAITING, TicketState.UPDATING)


@dataclass(frozen=True)
class Focus:
    """The tickets events name, read besides each rollout's open window: by number, or by their holders."""

    rollout_id: str | None = None
    ticket: int | None = None
    instances: tuple[str, ...] = ()  # the tickets' holders (one ticket request, or a run of them)


def focus_of(event: Event) -> Focus | None:
    """What a partial read for ``event`` must hold besides the open windows; None: read every ticket."""
    if isinstance(event, UpdateReported):
        # The canary's failure halts (every waiting ticket cancelled): read whole at once. Its success publishes,
        # which needs every ticket only to remind the members without one (``needs_every_ticket``).
        return None if event.ticket == 1 and not event.ok else Focus(event.rollout_id, ticket=event.ticket)
    if isinstance(event, OperatorAction) and event.action != "pause":
        return None
    if isinstance(event, TicketTaken):
        return Focus(event.rollout_id, instances=(event.instance,))
    return Focus()  # the open windows hold the updating ticket and the next to start


def publishes(event: Event) -> bool:
    """Whether ``event`` may publish its rollout (the canary's success), which consults the live members."""
    return isinstance(event, UpdateReported) and event.ticket == 1 and event.ok


def focus_of_all(events: Sequence[Event]) -> Focus | None:
    """What a partial read for ``events``, decided in one step, must hold; None: read every ticket.

    One event: its own focus. Ticket requests of one rollout: each requester's ticket. Anything
    else decided together is read whole (the worker batches only ticket requests).
    """
    if len(events) == 1:
        return focus_of(events[0])
    takers = [event for event in events if isinstance(event, TicketTaken)]
    if takers and len(takers) == len(events) and len({taker.rollout_id for taker in takers}) == 1:
        return Focus(takers[0].rollout_id, instances=tuple(dict.fromkeys(taker.instance for taker in takers)))
    return None


def open_window(rollout: Rollout) -> tuple[Ticket, ...]:
    """The first tickets from the low-water mark that wait or update: the updating ones come first
    (tickets start in number order), then the next to start; as many as a batch and one more
    (``batches.window``: three for a rollout of one at a time, ``OPEN_WINDOW``)."""
    opened = (t for t in rollout.tickets if t.number >= rollout.low_water and t.state in _OPEN_STATES)
    return tuple(opened)[:batches.window(rollout)]


def partial_view(group: Group, focus: Focus) -> Group:
    """The group as a partial read for ``focus`` sees it: what ``Ledger.load_group(group, focus)`` returns."""
    line = []
    for rollout in group.line:
        keep = {t.number: t for t in open_window(rollout)}
        if focus.rollout_id in (None, rollout.id):
            named = [rollout.ticket(focus.ticket)] if focus.ticket is not None \
                else [rollout.ticket_of(holder) for holder in focus.instances]
            for ticket in named:
                if ticket is not None:
                    keep[ticket.number] = ticket
        line.append(replace(rollout, tickets=tuple(keep[n] for n in sorted(keep)), expected=()))
    return replace(group, line=tuple(line))


# What a decision does to a rollout that needs every ticket of it (by the rollout's new state,
# or its publication), and why. Pausing is the one change of state that needs none.
EVERY_TICKET: dict[str, str] = {
    "published": "publication reminds the members without a ticket to take one",
    "batches": "publication dispatches a first batch larger than the tickets read",
    RolloutState.HALTED: "halting cancels every waiting ticket",
    RolloutState.ABORTED: "aborting cancels every waiting ticket",
    RolloutState.SUPERSEDED: "superseding moves every waiting ticket to the newer rollout",
    RolloutState.COMPLETED: "completion needs every expected member done",
    RolloutState.RUNNING: "resuming or retrying reopens every cancelled or failed ticket",
}


def needs_every_ticket(before: Group, decision: Decision) -> str | None:
    """Why ``decision``, taken on the partial view ``before``, must be taken again on every ticket; None if not."""
    was = {r.id: r for r in before.line}
    for rollout in decision.touched:
        old = was.get(rollout.id)
        if old is None:
            continue  # it joined the line in this step: the view holds all of it
        # Publication expects the live members (from the registry, not the tickets) and dispatches the first
        # batch, in the view when it is one ticket (the view was read one at a time: ``batches.sizes``). A larger
        # batch, or a reminder after a long canary (a manual promotion) naming who holds no ticket, needs them all.
        if rollout.published and not old.published:
            if batches.window(rollout) > batches.window(old):
                return EVERY_TICKET["batches"]
            if any(isinstance(a, Notify) and a.rollout_id == rollout.id for a in decision.actions):
                return EVERY_TICKET["published"]
        if rollout.state is not old.state and rollout.state in EVERY_TICKET:
            return EVERY_TICKET[rollout.state]
    return None


class Lines(Protocol):
    """The ledger's reads of a group's line (``skynet_tasks.ledger.lines.LineStore``)."""

    def load_group(self, group: str, focus: Focus | None = None) -> Group:
        """The group with every rollout in its line; with ``focus``, only the tickets ``partial_view`` keeps."""


class Reader:
    """Reads, for one event (or several decided in one step), a view of its group that suffices to
    decide it, and decides on it."""

    def __init__(self, lines: Lines, group: str, event: Event | Sequence[Event],
                 live_members: Collection[str]) -> None:
        self.lines = lines
        self.group = group
        self.events: tuple[Event, ...] = tuple(event) if isinstance(event, Sequence) else (event,)
        self.live_members = live_members
        self.focus = focus_of_all(self.events)

    def _members_before_the_group(self) -> None:
        """Read the live members (the registry's query, once per step) now, before the group: a decision that
        consults them (publication, completion) leaves that query out of the time between the group's read and
        its conditional write, in which another step's write (a member still lining up) makes it decide again."""
        len(self.live_members)

    def read_and_decide(self, now: float | None = None) -> tuple[Group, Decision]:
        """The group as read right now, and the conductor's decision on it (see the module's docstring).

        The decision's time is ``now`` if given (tests pin it), else the clock right after the read it
        is decided on: a read can wait (throttled, retried) while another step writes, and a time taken
        before it could then be earlier than the time that step wrote. Taken after, the times a group's
        decisions record follow the order of their writes (a ticket never starts before the one before
        it finished).
        """
        if self.focus is not None:
            if any(publishes(event) for event in self.events):
                self._members_before_the_group()
            view = self.lines.load_group(self.group, self.focus)
            steps = each(view, self.events, time.time() if now is None else now, self.live_members)
            if all(needs_every_ticket(before, decision) is None for before, decision in steps):
                return view, combined(view, [decision for _, decision in steps])
            self.focus = None  # this event needs every ticket: a decision taken again reads them at once
        self._members_before_the_group()  # (the decisions that read every ticket mostly consult them too)
        whole = self.lines.load_group(self.group)
        return whole, fold(whole, self.events, time.time() if now is None else now, self.live_members)


def member_view(lines: Lines, group: str, instance: str) -> Group:
    """The group as a member's heartbeat needs it: each rollout's open window and the member's own ticket."""
    return lines.load_group(group, Focus(instances=(instance,)))
