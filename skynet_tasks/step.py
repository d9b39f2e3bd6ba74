"""One conductor step: decide an event (or a run of them) on a fresh read of its group, and write the decision.

Two conductor steps of one group can run at once (the maintenance queue's two message
groups, a redelivery, moto's racy FIFO lock): the conditional write lets one win, and the
other decides again on what the winner wrote.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Collection, Sequence

from skynet_tasks.conductor import Decision, Event, Group, UpdateReported
from skynet_tasks.ledger import Conflict, Ledger
from skynet_tasks.ledger.reads import Reader

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20


class Unsettled(Conflict):
    """Every attempt of a step lost its conditional write to another step: the event is not decided."""


def decide_and_write_until_settled(ledger: Ledger, group: str, event: Event, live_members: Collection[str],
                                   now: float | None = None, attempts: int = MAX_ATTEMPTS,
                                   after_write: Callable[[Group, Decision], None] | None = None,
                                   then: Sequence[Event] = ()) -> Decision:
    """Decide ``event`` on a fresh read of ``group`` and write it; decide again whenever another step wrote first.

    ``then``: events decided after ``event`` in the same step, each on the state the one before left
    (``conductor.fold``), and written with it in one conditional write: all of them, or none.

    Returns the decision written (or one that changes nothing, which needs no write); raises
    Unsettled after ``attempts`` decisions that all lost their write. ``now`` pins the clock
    (tests); by default each attempt decides at the time its read returned (``Reader.read_and_decide``).
    ``after_write`` is told the group as read and the decision, once, when a decision is written (not
    for one that changes nothing); what it raises is logged, never raised: the decision stands.
    """
    reader = Reader(ledger, group, (event, *then), live_members)
    # A report's step is a hand-off's path (the next instance waits for its decision): it decides again at
    # once. The other steps (ticket requests, ticks, an operator's action) wait a jitter first, so when a
    # report's step and theirs collide, the report's wins the next round instead of colliding again. One of
    # two collided steps always wins (the write is conditioned on the group's version): no livelock.
    urgent = isinstance(event, UpdateReported)
    for attempt in range(1, attempts + 1):
        before, decision = reader.read_and_decide(now)
        if not decision.changed:
            return decision
        try:
            ledger.write_decision(before, decision)
        except Conflict:
            log.info("group %s: conflict at version %s (attempt %d of %d); deciding again", group, before.version,
                     attempt, attempts)
            if not urgent:
                time.sleep(0.01 + secrets.randbelow(90) / 1000)  # jitter, so retries do not collide again
            continue
        if after_write is not None:
            try:
                after_write(before, decision)
            except Exception:  # noqa: BLE001 - an observer never undoes or fails a written decision
                log.warning("group %s: an observer of the decision at version %s failed", group, before.version,
                            exc_info=True)
        return decision
    raise Unsettled(f"group {group}: gave up after {attempts} decisions that all lost to another step's write")
