"""``take_ticket``: this instance lines up in a rollout of its group (the conductor told it to)."""

from __future__ import annotations

import logging

from skynet_tasks.app import app
from skynet_tasks.conductor import TicketTaken
from skynet_tasks.context import Context
from skynet_tasks.messages import TAKE_TICKET_TASK
from skynet_tasks.tasks.base import SkynetTask, send_event

log = logging.getLogger(__name__)


# A routine success (one send) is not worth a row on the dashboard's task page: the ticket is on the rollout's; one
# record per member, written while the canary updates, was CPU and a write the first hand-off competed with.
@app.task(name=TAKE_TICKET_TASK, base=SkynetTask, bind=True, time_limit=60, quiet_success=True)
def take_ticket(self: SkynetTask, rollout_id: str, again: bool = False, canary: str | None = None) -> None:
    """Post this instance's ticket in rollout ``rollout_id``'s line."""
    handle_take_ticket(self.ctx, rollout_id, again, canary)


def handle_take_ticket(ctx: Context, rollout_id: str, again: bool = False, canary: str | None = None) -> None:
    """Post this instance's ticket in the group's line; when told ``again``, only if it holds none yet.

    A second notification (``conductor.Notify.again``) goes to every member without a ticket when a
    release is published long after its rollout started (a manual promotion): a member that asked at
    the start and holds its ticket asks for none, which would cost the conductor a step that changes
    nothing; one that joined since asks. ``canary``: the rollout's canary, which holds ticket 1 and asks
    for none (a broadcast reaches every member of the group).
    """
    me = ctx.settings.require_instance().instance_id
    if me == canary:  # a broadcast to the whole group (``skynet_tasks.broadcast``) reaches the canary too
        return
    if again and ctx.ledger.holds_ticket(rollout_id, me):
        log.info("rollout %s: %s holds a ticket already; not asking again", rollout_id, me)
        return
    send_event(ctx, ctx.settings.group, TicketTaken(rollout_id, me))
    log.info("rollout %s: %s took a ticket", rollout_id, me)
