"""The progress deadline: a rollout that goes too long without an instance becoming healthy halts.

As Nomad's ``progress_deadline``: a rollout's progress clock starts when its first ticket is
dispatched, and starts again each time one of its tickets is done (its instance updated, passed its
health check and, with a bake, stayed healthy), when it is published (its canary succeeded, or a
person promoted it), when its maintenance window opens, and when it runs again after a pause or a
halt; it does not run while the rollout waits for a promotion or a window. A running rollout whose clock
shows more than its ``progress_deadline`` halts at the next tick, whatever held it up: an update
that hangs, members that never take their ticket, a line that does not move. Ticket deadlines still
catch a single update that hangs; this catches a rollout that does not move as a whole.

Pure, like the rest of the conductor: ``clocked`` is applied to every decision (``rules.decide``)
and ``stalled`` is read by the tick (``rules``) and by the heartbeat's ``attention``. The clock lives
in the rollout's record (``Rollout.progress_at``), so a partial view of the line decides as the
whole line does (``skynet_tasks.ledger.reads``).
"""

from __future__ import annotations

from dataclasses import replace

from skynet_tasks.conductor import promotion, windows
from skynet_tasks.conductor.decisions import Decision
from skynet_tasks.conductor.line import Group, Rollout
from skynet_tasks.states import RolloutState, TicketState


def made_progress(before: Rollout | None, after: Rollout) -> bool:
    """Whether the step that turned ``before`` into ``after`` starts the rollout's progress clock again."""
    if after.state is not RolloutState.RUNNING:
        return False
    if after.progress_at is None:  # its first dispatch: the clock starts
        return any(t.state is TicketState.UPDATING for t in after.tickets)
    if before is None:
        return False
    if before.state is not RolloutState.RUNNING:  # resumed or retried
        return True
    if after.published and not before.published:  # the canary succeeded, or a person promoted it
        return True
    if windows.waits(before) and not windows.waits(after):  # its maintenance window opened
        return True
    was = {t.number: t.state for t in before.tickets}
    return any(t.state is TicketState.DONE and was.get(t.number) is not TicketState.DONE for t in after.tickets)


def clocked(before: Group, decision: Decision, now: float) -> Decision:
    """``decision`` with the progress clock of each rollout it made progress in started again at ``now``."""
    was = {r.id: r for r in before.line}
    restarted = {r.id: replace(r, progress_at=now) for r in decision.touched if made_progress(was.get(r.id), r)}
    if not restarted:
        return decision
    line = tuple(restarted.get(r.id, r) for r in decision.group.line)
    return replace(decision, group=replace(decision.group, line=line),
                   touched=tuple(restarted.get(r.id, r) for r in decision.touched))


def stalled(rollout: Rollout, now: float) -> bool:
    """The running rollout passed its progress deadline: no instance became healthy in it in time.

    Waiting for a person's promotion or for a maintenance window is not a stall: the clock starts
    again when the wait ends (``made_progress``).
    """
    return rollout.state is RolloutState.RUNNING and rollout.progress_deadline is not None \
        and rollout.progress_at is not None and now > rollout.progress_at + rollout.progress_deadline \
        and not promotion.awaiting(rollout) and not windows.waits(rollout)


def stall_reason(rollout: Rollout, now: float) -> str:
    """Why a stalled rollout halts, naming its deadline."""
    since = now - (rollout.progress_at or now)
    return (f"progress deadline passed: no instance became healthy in {since:.0f}s "
            f"(rollout.progress_deadline {rollout.progress_deadline:g}s)")


def any_stalled(group: Group, now: float) -> bool:
    """Whether a rollout of the group's line passed its progress deadline (``attention``'s rule)."""
    return any(stalled(rollout, now) for rollout in group.line)
