"""``maintenance``: one conductor step of a group, on the message its FIFO queue handed this member.

The conductor runs it, one message at a time, in the worker's main process (workers/conductor.py).
The decision is the pure ``conductor.decide``; this module is its I/O shell: read fresh state, decide, write the
decision conditionally, then act: dispatch an update (the step's critical part), then, once the conductor
has settled the step's messages (``trailing``), tell the members whose turn comes next to prepare, tell
members to take a ticket, and hand the step's notices for people to this instance's queue.

Trust: the event comes from the maintenance queue (Skynet's own senders, by IAM) and is
validated by ``events.from_message`` before it reaches a decision.

Acknowledgement: the message is deleted only once its decision is written (or found to change
nothing). A step that fails, for whatever reason, rejects it without requeue, and kombu leaves a
rejected message in a queue that has a redrive policy (kombu.transport.SQS ``basic_reject``): SQS
hands it out again after the queue's visibility timeout, and after ``queues.MAX_RECEIVES`` receives
moves it to the group's dead-letter queue, where ``skynet dlq`` shows and redrives it. A step stopped
at its hard time limit is a failure like any other (rejected without requeue; a conductor run
as a worker of its own, ``--role conductor``, has Celery's pool kill it and reject it with requeue,
which kombu turns into a shorter visibility timeout): either way it counts its receives and ends
in the dead-letter queue.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from skynet_tasks.app import app
from skynet_tasks.conductor import Decision, Dispatch, Group, Notify
from skynet_tasks.conductor.batches import newly_next
from skynet_tasks.context import Context
from skynet_tasks.events import from_message
from skynet_tasks.messages import MAINTENANCE_TASK, PREPARE_TASK, TAKE_TICKET_TASK, UPDATE_TASK
from skynet_tasks.notify.events import Notice, notices
from skynet_tasks.notify.handoff import hand_off
from skynet_tasks.registry import LiveMembers
from skynet_tasks.step import decide_and_write_until_settled
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.trailing import after_settled

# A second notification (``Notify.again``) waits this long in its member's worker: a request of the member's
# still on its way is decided by then, and the member, finding its ticket, asks for none.
NOTIFY_AGAIN_AFTER = 3.0
# A member told to prepare that gets the message later than this (it was down) has nothing to prepare for.
PREPARE_EXPIRES = 60.0
# ... and starts its child this long after it is told: once the turn just dispatched was acknowledged, not
# beside it. The fork and the child's AWS clients took the CPU the acknowledging instance needed where
# instances share cores (the local cluster: 2 cores for 10 to 40 instances); an update takes far longer
# than this, so the child is still ready for its turn.
PREPARE_AFTER = 0.2

log = logging.getLogger(__name__)


# acks_on_failure_or_timeout=False: an event that failed is never deleted, whatever failed (conflicts
# that never settled, throttling past botocore's retries, a bug); see the module docstring.
# A malformed event (BadEvent) is not refused and acknowledged either: it is dead-lettered like any
# failure. IAM lets only Skynet send here, so a malformed event means two Skynet versions disagree
# (a skynet-update rollout half way): another member, on the newer version, may decide it on a
# redelivery, and if none can it waits in the dead-letter queue, visible, for a redrive once the
# group runs one version. It cannot loop: SQS moves it away after MAX_RECEIVES receives.
@app.task(name=MAINTENANCE_TASK, base=SkynetTask, bind=True, soft_time_limit=12, time_limit=15,
          acks_on_failure_or_timeout=False)
def maintenance(self: SkynetTask, group: str, event: dict[str, Any], then: list[Any] | None = None) -> None:
    """Take one conductor step of ``group`` on ``event`` (and on ``then``, the events received right after it)."""
    handle_maintenance(self.ctx, group, event, then=then or ())


def handle_maintenance(ctx: Context, group: str, message: Any, now: float | None = None,
                       then: Sequence[Any] = ()) -> Decision | None:
    """One conductor step: decide on the event against fresh state, write it conditionally, then act.

    ``then`` are more events (message bodies, untrusted like ``message``) decided after it in the same
    step and written with it (the conductor's thread batches a run of ticket requests: workers/conductor.py).
    """
    event = from_message(message)
    following = [from_message(body) for body in then]
    # Read once per step (heartbeats are minutes apart; a retry needs none fresher), and only if asked.
    live = LiveMembers(ctx.registry, ctx.settings.env, group, ctx.settings.heartbeat_max_age)
    told: list[Notice] = []  # what the written decision did to its rollouts, for people (sent after the turn)
    prepared: list[str] = []  # the members whose turn became the next (tasks.prepare)

    def after_write(before: Group, written: Decision) -> None:
        prepared.extend(newly_next(before, written.group))
        told.extend(notices(before, written, time.time()))

    decision = decide_and_write_until_settled(ctx.ledger, group, event, live, now, after_write=after_write,
                                              then=following)
    try:
        dispatch(ctx, decision)
    finally:  # a redelivered event decides nothing new: what the decision tells is told now or never
        after_settled(functools.partial(tell, ctx, decision, prepared, told, live))
    return decision


def dispatch(ctx: Context, decision: Decision) -> None:
    """Send the updates a decision dispatched: an instance waits on its update message (the step's critical part)."""
    for action in decision.actions:
        if isinstance(action, Dispatch):
            ctx.messenger.to_instance(action.instance, UPDATE_TASK,
                                      {"rollout_id": action.rollout_id, "ticket": action.ticket})
            log.info("rollout %s: ticket %d's number came up on %s", action.rollout_id, action.ticket,
                     action.instance)


def tell(ctx: Context, decision: Decision, prepared: Sequence[str] = (), told: Sequence[Notice] = (),
         live: LiveMembers | None = None) -> None:
    """Tell what a decision leaves to tell, once its step's messages are settled (``trailing``): the next members
    to prepare (``prepared``), members to take a ticket, people its notices (``told``)."""
    try:
        for instance in prepared:
            try:  # only saves the member a moment when its turn comes: never fails the rest
                ctx.messenger.to_instance(instance, PREPARE_TASK, {}, expires=PREPARE_EXPIRES, countdown=PREPARE_AFTER)
            except Exception:  # noqa: BLE001 - logged; the update starts the child itself
                log.warning("could not tell %s its turn comes next", instance, exc_info=True)
        for action in decision.actions:
            if isinstance(action, Notify):
                tell_to_take_tickets(ctx, decision, action, live)
    finally:
        hand_off(ctx, told)


def tell_to_take_tickets(ctx: Context, decision: Decision, action: Notify, live: LiveMembers | None) -> None:
    """Tell ``action.instances`` to take a ticket: in one broadcast to the group where its members hear it
    (``skynet_tasks.broadcast``), and one message each to those that do not.

    The broadcast reaches every member whose queue hears the group's topic, the canary included, which
    holds its ticket and asks for none (``canary``). A second notification (``again``) waits in each
    member's worker (a countdown, which SNS does not carry): it goes one message each, as it is rare.
    """
    group, rollout = decision.group.name, decision.group.rollout(action.rollout_id)
    kwargs: dict[str, Any] = {"rollout_id": action.rollout_id}
    rest: Sequence[str] = action.instances
    if action.again:
        kwargs["again"] = True
    elif live is not None and group == ctx.settings.group and len(rest) > 1:
        try:
            ctx.messenger.to_members(group, TAKE_TICKET_TASK, {**kwargs, "canary": rollout.canary if rollout else None})
            rest = live.deaf(action.instances)
        except Exception:  # noqa: BLE001 - logged; every member is then told on its own, as before
            log.warning("rollout %s: the broadcast to group %s failed: each member told on its own",
                        action.rollout_id, group, exc_info=True)
    for instance in rest:
        ctx.messenger.to_instance(instance, TAKE_TICKET_TASK, kwargs,
                                  countdown=NOTIFY_AGAIN_AFTER if action.again else None)
    log.info("rollout %s: %d members told to take a ticket (%d of them one by one)", action.rollout_id,
             len(action.instances), len(rest))
