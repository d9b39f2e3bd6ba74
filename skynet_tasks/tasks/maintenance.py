"""``maintenance``: one conductor step of a group, on the message its FIFO queue handed this member.

The conductor worker runs it (concurrency 1, prefetch 1). The decision is the pure
``conductor.decide``; this module is its I/O shell: read fresh state, decide, write the
decision conditionally, then act (dispatch an update, tell members to take a ticket).

Trust: the event comes from the maintenance queue (Skynet's own senders, by IAM) and is
validated by ``events.from_message`` before it reaches a decision.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from skynet_tasks.app import app
from skynet_tasks.conductor import Decision, Dispatch, NeedsFullView, Notify, decide, focus_of
from skynet_tasks.context import Context
from skynet_tasks.events import from_message
from skynet_tasks.ledger import Conflict
from skynet_tasks.messages import MAINTENANCE_TASK, TAKE_TICKET_TASK, UPDATE_TASK
from skynet_tasks.registry import LiveMembers
from skynet_tasks.tasks.base import SkynetTask

log = logging.getLogger(__name__)


@app.task(name=MAINTENANCE_TASK, base=SkynetTask, bind=True, soft_time_limit=12, time_limit=15)
def maintenance(self: SkynetTask, group: str, event: dict[str, Any]) -> None:
    """Take one conductor step of ``group`` on ``event``."""
    handle_maintenance(self.ctx, group, event)


def handle_maintenance(ctx: Context, group: str, message: Any, now: float | None = None) -> Decision | None:
    """One conductor step: decide on the event against fresh state, write it conditionally, then act."""
    event = from_message(message)
    focus = focus_of(event)  # most steps need a few tickets, not the whole line
    # Read once per step (heartbeats are minutes apart; a retry needs none fresher), and only if asked.
    live = LiveMembers(ctx.registry, ctx.settings.env, group, ctx.settings.heartbeat_max_age)
    for attempt in range(20):
        if focus is None:
            # The decisions that read every ticket mostly consult the members too (publication,
            # completion). Read before the group's item, they leave out of the time between
            # that read and the conditional write, in which another step's write makes it fail.
            live.members  # noqa: B018
        before = ctx.ledger.load_group(group, focus)
        try:
            decision = decide(before, event, time.time() if now is None else now, live)
        except NeedsFullView:
            focus = None  # this step publishes, completes, halts or acts for an operator: read every ticket
            continue
        if decision.changed:
            try:
                ctx.ledger.write_decision(before, decision)
            except Conflict:
                # Another conductor moved the group on: decide again on what it wrote.
                log.info("group %s: conflict at version %s (attempt %d); deciding again", group, before.version,
                         attempt + 1)
                time.sleep(0.01 + secrets.randbelow(90) / 1000)  # jitter, so retries do not collide again
                continue
        perform(ctx, decision)
        return decision
    raise Conflict(f"group {group}: gave up after 20 conflicting decisions")


def perform(ctx: Context, decision: Decision) -> None:
    """Carry out a decision's actions: an update dispatched, members told to take a ticket."""
    # The turn first: an instance waits on its update message, while ticket notifications can trail.
    for action in sorted(decision.actions, key=lambda action: not isinstance(action, Dispatch)):
        if isinstance(action, Dispatch):
            ctx.messenger.to_instance(action.instance, UPDATE_TASK,
                                      {"rollout_id": action.rollout_id, "ticket": action.ticket})
            log.info("rollout %s: ticket %d's number came up on %s", action.rollout_id, action.ticket,
                     action.instance)
        elif isinstance(action, Notify):
            for instance in action.instances:
                ctx.messenger.to_instance(instance, TAKE_TICKET_TASK, {"rollout_id": action.rollout_id})
            log.info("rollout %s: %d members told to take a ticket", action.rollout_id, len(action.instances))
