"""``re_register``: this instance registers afresh and heals its group's line.

It runs at boot (``workers.launch``), on every heartbeat (the work worker's main process
calls this task's own ``run``: see ``workers.launch.heartbeat_step`` for why it is not a
message), and when an operator asks (``skynet instance re-register INSTANCE_ID`` sends it
to the instance's own queue). Healing: a member that missed its notification takes a
ticket, a ticket of this instance that passed its deadline is reported, a report of this
instance that was written but never decided is sent again, and a line that needs the
conductor's attention gets a tick.
"""

from __future__ import annotations

import logging
import secrets
import time

from skynet_tasks.app import app
from skynet_tasks.conductor import Rollout, Tick, TicketTaken, UpdateReported, attention
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.ledger.reads import member_view
from skynet_tasks.membership import sweep
from skynet_tasks.messages import RE_REGISTER_TASK
from skynet_tasks.registration import register_self
from skynet_tasks.states import RolloutState, TicketState
from skynet_tasks.tasks.base import SkynetTask, send_event

log = logging.getLogger(__name__)

# About one heartbeat in ten, spread over the members, also sweeps: enough to clean up
# within minutes, without every instance scanning the registry every beat.
SWEEP_ONE_IN = 10


@app.task(name=RE_REGISTER_TASK, base=SkynetTask, bind=True, time_limit=60, quiet_success=True)
def re_register(self: SkynetTask, reason: str = "heartbeat") -> None:
    """Register this instance afresh and heal its group's line, as one heartbeat does."""
    heartbeat(self.ctx, reason)


def heartbeat(ctx: Context, reason: str = "heartbeat") -> None:
    """One heartbeat of this instance: re-register and heal (``handle_re_register``), now and then sweep."""
    handle_re_register(ctx, reason)
    if secrets.randbelow(SWEEP_ONE_IN) == 0:
        sweep(ctx)


def handle_re_register(ctx: Context, reason: str = "heartbeat") -> None:
    """Heartbeat: register, take a missed ticket, and report a stalled line to the conductor."""
    s = ctx.settings.require_instance()
    register_self(ctx, last_task=f"re_register ({reason})")
    group = member_view(ctx.ledger, s.group, s.instance_id)
    now = time.time()
    report_not_updating(ctx, group.line)
    report_undecided(ctx, group.line)
    mine = ctx.layout.current_release()
    newest = group.line[-1] if group.line else None
    if newest is not None and newest.id == group.desired_rollout and newest.published \
            and newest.state in (RolloutState.RUNNING, RolloutState.PAUSED) \
            and newest.ticket_of(s.instance_id) is None and mine != newest.release:
        log.info("rollout %s: %s missed its notification; taking a ticket now", newest.id, s.instance_id)
        send_event(ctx, s.group, TicketTaken(newest.id, s.instance_id))
    if attention(group, now):
        body, _ = to_message(Tick())
        # One tick per group per heartbeat interval, however many members notice.
        ctx.messenger.maintenance(s.group, body, f"tick:{int(now // max(s.heartbeat_interval, 1))}")


def report_not_updating(ctx: Context, line: tuple[Rollout, ...]) -> None:
    """Release the group's line from a hold on this instance's overdue ticket.

    A heartbeat runs only while the work worker holds no task, and nothing starts while it
    runs (``workers.launch.heartbeat_step``); a boot runs before the worker consumes. Either
    way, whatever update of this instance passed its deadline is not running any more, so
    the line need not wait for the task's time limit.
    """
    me = ctx.settings.require_instance().instance_id
    for rollout in line:
        ticket = rollout.ticket_of(me)
        if ticket is not None and rollout.held_by == ticket.number and ticket.state is not TicketState.UPDATING:
            log.info("rollout %s: ticket %d passed its deadline and %s is not updating; telling the conductor",
                     rollout.id, ticket.number, me)
            send_event(ctx, ctx.settings.group, UpdateReported(rollout.id, ticket.number, me, False,
                                                               "the instance is not updating (late report)"))


def report_undecided(ctx: Context, line: tuple[Rollout, ...]) -> None:
    """Send again this instance's report of a ticket still updating that its update already wrote.

    The update task writes its report on the ticket (``reported_attempt`` and the outcome), then decides it
    itself (``tasks.report``). A process that died between the two left the ticket updating and nothing
    queued: without this, the ticket would fail at its deadline and halt a rollout whose update succeeded.
    A heartbeat runs only while the worker holds no task, so no update of this instance is running; the
    report goes to the group's conductor, and one already decided or queued decides nothing again.
    Trusted: the ticket's annotations are this instance's own writes.
    """
    me = ctx.settings.require_instance().instance_id
    for rollout in line:
        ticket = rollout.ticket_of(me)
        if ticket is None or ticket.state is not TicketState.UPDATING:
            continue
        item = ctx.ledger.ticket(rollout.id, ticket.number) or {}
        if item.get("reported_attempt") != ticket.attempts or not isinstance(item.get("reported_ok"), bool):
            continue  # its update has not reported this attempt (not run yet, or runs again)
        log.info("rollout %s: ticket %d's report was written but never decided; sending it to the conductor",
                 rollout.id, ticket.number)
        reported_at = item.get("reported_at")
        send_event(ctx, ctx.settings.group, UpdateReported(
            rollout.id, ticket.number, me, item["reported_ok"], item.get("reported_error"),
            float(reported_at) if isinstance(reported_at, int | float) else None))
