"""Work a conductor step leaves until its messages are settled: the sends no decision waits for.

A step holds its FIFO message group until its messages are acknowledged: the group's next event (the
next report, the next ticket request) waits for it. Its critical work is done once the decision is
written and the turn dispatched. What follows (telling the members to take a ticket, telling the next
one to prepare, handing notices to people) is sent at most once anyway: a redelivered event decides
nothing new, so a redelivery never sent them again. The conductor's thread (workers/conductor_steps.py)
therefore settles a step's messages first and runs this trailing work after, so that telling 39
members of a rollout's start no longer holds the canary's report for 3 s.

Outside a conductor's thread (a conductor run as a Celery task, a test), ``after_settled`` runs the
work at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)

Work = Callable[[], None]

_pending: ContextVar[list[Work] | None] = ContextVar("skynet_trailing_work", default=None)


def after_settled(work: Work) -> None:
    """Run ``work`` once the step's messages are settled, if a conductor defers it (``deferring``); else now."""
    pending = _pending.get()
    if pending is None:
        work()
    else:
        pending.append(work)


@contextmanager
def deferring() -> Iterator[list[Work]]:
    """Collect the work ``after_settled`` is given within, for the caller to ``run`` once it settled."""
    pending: list[Work] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def run(pending: list[Work]) -> None:
    """Run each piece of deferred work in order; one that fails is logged and the rest still run."""
    for work in pending:
        try:
            work()
        except Exception:  # noqa: BLE001 - the step's messages are settled: nothing is left to fail
            log.warning("work a conductor step left until its messages were settled failed", exc_info=True)
