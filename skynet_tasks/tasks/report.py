"""An update's report, decided by the instance that reports: the hand-off without the report's trip through SQS.

A report used to go to the group's FIFO queue, where some member's conductor received it and took its
step. That trip (a send, then a receive by a long poll) was a third of a hand-off on the local cluster:
20 of the 55 ms from a report to the decision that dispatches the next ticket (benchmarks/RESULTS.md).
The reporting instance now takes its report's step itself, right after its report's writes: the same
fresh read, pure decision and conditional write any conductor makes (``maintenance.handle_maintenance``).

The queue never was what kept two instances from updating at once: every step's write is a transaction
conditioned on the group's version, because SQS redelivers and a group's two message groups (reports,
ticket requests) already ran steps side by side. A step taken here and one a conductor takes meanwhile (a
ticket request, a tick, an operator's pause) cannot both win: the loser reads again and decides again.

If the step fails (AWS refusing past the client's retries, conflicts that never settled, a bug), the
report goes to the queue as before and a conductor takes the step; a report already decided here decides
nothing the second time. If the worker's process dies between the report's writes and the step's, nothing
is sent then: the instance's next heartbeat finds its ticket still updating but reported, and sends the
report to the conductor (``re_register.report_undecided``: the outcome is kept on the ticket for it).

Trusted: the event is this instance's own, built by the update task from its own outcome.
"""

from __future__ import annotations

import logging

from skynet_tasks.conductor import UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.tasks.base import send_event
from skynet_tasks.tasks.maintenance import handle_maintenance

log = logging.getLogger(__name__)


def report_update(ctx: Context, event: UpdateReported) -> None:
    """Decide this instance's report here; if that fails, send it to the group's conductor instead."""
    group = ctx.settings.group
    try:
        handle_maintenance(ctx, group, to_message(event)[0])
    except Exception:  # noqa: BLE001 - whatever failed, a conductor takes the step from the queue
        log.warning("rollout %s: the report of ticket %d was not decided here; sending it to the group's"
                    " conductor", event.rollout_id, event.ticket, exc_info=True)
        send_event(ctx, group, event)
