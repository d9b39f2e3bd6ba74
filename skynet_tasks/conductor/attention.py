"""The deadline rule, written once: what makes a group's line need a conductor step of its own.

Nothing but time moves a line whose ticket stalled: its instance died, its update message was
lost, a hold ran out, a member left so that a published rollout may be complete, or a rollout
went past its progress deadline (``progress``). The tick (``rules``) acts on each of these, and
every member's heartbeat asks ``attention`` whether to send one
(``skynet_tasks.tasks.re_register.handle_re_register``): both read the rules below.
"""

from __future__ import annotations

from collections.abc import Callable

from skynet_tasks.conductor import promotion, windows
from skynet_tasks.conductor.line import Group, Ticket
from skynet_tasks.conductor.progress import any_stalled
from skynet_tasks.states import RolloutState

# A dispatched ticket whose instance has not acknowledged it after this long is
# sent again: the conductor may have died between its write and its send.
REDISPATCH_AFTER = 30.0

# The update task's hard time limit (``skynet_tasks.tasks``). An instance starts an update
# only before its ticket's deadline (``Ledger.acknowledge_ticket``), so an update still
# running after its deadline has stopped by ``deadline + UPDATE_HARD_LIMIT``.
UPDATE_HARD_LIMIT = 600.0


def overdue(ticket: Ticket, now: float) -> bool:
    """The updating ticket passed its deadline: its instance did not report in time."""
    return ticket.deadline is not None and now > ticket.deadline


def unacknowledged(ticket: Ticket, now: float) -> bool:
    """The updating ticket's instance has not acknowledged its dispatch for REDISPATCH_AFTER seconds."""
    return ticket.acknowledged_at is None and ticket.started_at is not None \
        and now - ticket.started_at > REDISPATCH_AFTER


def _hold_passed(group: Group, now: float) -> bool:
    return any(r.held_until is not None and not r.holds(now) for r in group.line)


def _updating_overdue(group: Group, now: float) -> bool:
    return any(overdue(ticket, now) for _, ticket in group.updating_tickets())


def _updating_unacknowledged(group: Group, now: float) -> bool:
    return any(unacknowledged(ticket, now) for _, ticket in group.updating_tickets())


def _may_be_complete(group: Group, now: float) -> bool:
    # Nobody updating and nobody waiting: a published rollout may be complete now that a member left.
    newest = group.line[-1] if group.line else None
    return group.updating() is None and newest is not None and newest.published \
        and newest.state is RolloutState.RUNNING


# What makes a line need a tick, and what the tick then does about it.
ATTENTION: tuple[tuple[str, Callable[[Group, float], bool]], ...] = (
    ("a hold passed: the line may go on", _hold_passed),
    ("an updating ticket passed its deadline: the rollout halts", _updating_overdue),
    ("an updating ticket's dispatch was not acknowledged: it is sent again", _updating_unacknowledged),
    ("a published rollout has nobody updating: it may be complete", _may_be_complete),
    ("a rollout passed its progress deadline: it halts", any_stalled),
    ("a rollout waited for promotion past its promote_timeout: it is aborted",
     lambda group, now: any(promotion.timed_out(r, now) for r in group.line)),
    ("a rollout's maintenance window opened: its tickets start",
     lambda group, now: any(windows.opened(r, now) for r in group.line)),
)


def attention(group: Group, now: float) -> str | None:
    """Why the group's line needs a tick now, or None if it does not.

    ``group`` may hold only the open windows of its rollouts (a heartbeat's partial read):
    the updating ticket is always in them, and holds and publication are in each record.
    """
    for reason, applies in ATTENTION:
        if applies(group, now):
            return reason
    return None


# How far back an instance's report time is believed (its clock may be wrong; it is only a metric's start).
REPORT_TIME_BELIEVED = 3600.0


def believed_report_time(reported_at: float, now: float) -> float:
    """An instance's report time (its own clock: untrusted) as the conductor keeps it: not ahead of now,
    not more than ``REPORT_TIME_BELIEVED`` behind."""
    return min(now, max(reported_at, now - REPORT_TIME_BELIEVED))
