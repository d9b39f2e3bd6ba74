"""What an operator's pause, resume, retry, abort or promote does to a rollout (``events.OperatorAction``)."""

from __future__ import annotations

from dataclasses import replace

from skynet_tasks.conductor import batches, promotion
from skynet_tasks.conductor.draft import Draft
from skynet_tasks.conductor.events import OperatorAction
from skynet_tasks.conductor.line import Rollout
from skynet_tasks.states import RolloutState, TicketState


def canary_failed(rollout: Rollout) -> bool:
    """The rollout's canary failed before publication: nothing may go on from here but a retry."""
    first = rollout.ticket(1)
    return not rollout.published and first is not None and first.state is TicketState.FAILED


def apply_operator(draft: Draft, event: OperatorAction) -> None:
    """Apply an operator's action to its rollout in ``draft``; an action that does not apply changes nothing."""
    rollout = draft.group.rollout(event.rollout_id)
    if rollout is None or rollout.state.finished:
        return
    who = f"by {event.actor}"
    if event.action == "pause" and rollout.state is RolloutState.RUNNING:
        draft.put(replace(rollout, state=RolloutState.PAUSED, reason=f"paused {who}"),
                  f"rollout {rollout.id} paused {who}")
    elif event.action == "promote":
        if promotion.awaiting(rollout):  # else a duplicate, or a promote that came too late: nothing to do
            draft.publish(replace(rollout, reason=f"promoted {who}"))
    elif event.action == "resume" and canary_failed(rollout):
        return  # resuming would go on without a release that passed its canary; retry is the way
    elif event.action in ("resume", "retry") and rollout.reverted_by is not None:
        return  # its revert took the group back (``revert``): deploying its release again is the way
    elif event.action in ("resume", "retry") and batches.still_updating(rollout):
        return  # the halted batch is still finishing: reopened tickets would start beside it
    elif event.action in ("resume", "retry") and rollout.state in (RolloutState.PAUSED, RolloutState.HALTED):
        # Resuming gives the cancelled members their place back, in their order;
        # retrying also gives the failed ticket another attempt, first in line.
        reopen = {TicketState.CANCELLED} | ({TicketState.FAILED} if event.action == "retry" else set())
        tickets = tuple(
            replace(t, state=TicketState.WAITING, finished_at=None, started_at=None, deadline=None,
                    attempts=t.attempts + (t.state is TicketState.FAILED))
            if t.state in reopen else t
            for t in rollout.tickets
        )
        verb = "resumed" if event.action == "resume" else "retried"
        reopened = [t.number for t in rollout.tickets if t.state in reopen]
        low_water = min([rollout.low_water, *reopened])
        draft.put(replace(rollout, state=RolloutState.RUNNING, tickets=tickets, reason=f"{verb} {who}",
                          low_water=low_water),
                  f"rollout {rollout.id} {verb} {who}")
    elif event.action == "abort":
        # An update already in flight finishes; nothing after it is dispatched.
        draft.end(rollout, RolloutState.ABORTED, f"aborted {who}", f"rollout {rollout.id} aborted {who}")
