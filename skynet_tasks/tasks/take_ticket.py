"""``take_ticket``: this instance lines up in a rollout of its group (the conductor told it to)."""

from __future__ import annotations

import logging

from skynet_tasks.app import app
from skynet_tasks.conductor import TicketTaken
from skynet_tasks.context import Context
from skynet_tasks.messages import TAKE_TICKET_TASK
from skynet_tasks.tasks.base import SkynetTask, send_event

log = logging.getLogger(__name__)


@app.task(name=TAKE_TICKET_TASK, base=SkynetTask, bind=True, time_limit=60)
def take_ticket(self: SkynetTask, rollout_id: str) -> None:
    """Post this instance's ticket in rollout ``rollout_id``'s line."""
    handle_take_ticket(self.ctx, rollout_id)


def handle_take_ticket(ctx: Context, rollout_id: str) -> None:
    """Post this instance's ticket in the group's line."""
    me = ctx.settings.require_instance().instance_id
    send_event(ctx, ctx.settings.group, TicketTaken(rollout_id, me))
    log.info("rollout %s: %s took a ticket", rollout_id, me)
