"""A rollout's batches: which batch a ticket is in, and which tickets may start now.

Pure arithmetic on a rollout (``line.Rollout``): its batch sizes are fixed when it is published
(``Rollout.batches``, from ``skynet_tasks.policy.batch_sizes``). The canary, ticket 1 of a rollout
that has one, is a batch of its own of size 1; the batches follow it by ticket number, the last
size repeating. As Ansible's ``serial``, a batch starts once every ticket before it is over, and
then its tickets start as they are taken, up to the batch's size.

The invariant this keeps (``rules`` calls ``startable`` only): every ticket updating in a rollout
is in one batch, and no more of them update than that batch's size.
"""

from __future__ import annotations

from skynet_tasks.conductor.line import Group, Rollout, Ticket
from skynet_tasks.states import RolloutState, TicketState

CANARY_BATCH = -1


def sizes(rollout: Rollout) -> tuple[int, ...]:
    """The rollout's batch sizes in its group (one at a time until it is published)."""
    return rollout.batches or (1,)


def batch_of(rollout: Rollout, number: int) -> tuple[int, int]:
    """The batch ticket ``number`` of ``rollout`` is in, and that batch's size (the canary's: CANARY_BATCH, 1)."""
    if rollout.canary is not None and number == 1:
        return CANARY_BATCH, 1
    offset = number - (2 if rollout.canary is not None else 1)
    steps = sizes(rollout)
    for index, size in enumerate(steps[:-1]):
        if offset < size:
            return index, size
        offset -= size
    last = steps[-1]
    return len(steps) - 1 + offset // last, last


def window(rollout: Rollout) -> int:
    """How many open tickets from the low-water mark a partial read needs: a whole batch, the next to start, and
    the one after it, whose holder is told to prepare when the next starts (``newly_next``; the rest of a large
    batch's next batch comes into view, and is told, as the tickets before it end)."""
    return max(sizes(rollout)) + 2


def open_tickets(rollout: Rollout) -> list[Ticket]:
    """The rollout's tickets that wait or update, in number order."""
    return [t for t in rollout.tickets if t.state in (TicketState.WAITING, TicketState.UPDATING)]


def startable(rollout: Rollout) -> list[Ticket]:
    """The waiting tickets of ``rollout`` that may start now, in number order, if it is the group's one rollout
    with tickets updating (or none is); the caller checks that the rollout runs and nothing holds the line.

    Before publication only the canary starts, alone. After it, the waiting tickets of the batch of
    the first open ticket start, as long as every ticket updating is in that batch.
    """
    pending = open_tickets(rollout)
    if not pending:
        return []
    updating = [t for t in pending if t.state is TicketState.UPDATING]
    if not rollout.published:
        first = pending[0]
        alone = not updating and first.state is TicketState.WAITING and first.instance == rollout.canary
        return [first] if alone else []
    current, _ = batch_of(rollout, pending[0].number)
    if any(batch_of(rollout, t.number)[0] != current for t in updating):
        return []  # a batch still finishing: the earlier tickets reopened by an operator wait for it
    # A batch holds ``size`` ticket numbers, so starting all of its waiting tickets never makes more than ``size``.
    return [t for t in pending if t.state is TicketState.WAITING and batch_of(rollout, t.number)[0] == current]


def next_up(rollout: Rollout) -> list[Ticket]:
    """The waiting tickets that start at the rollout's next batch boundary: the first waiting one and the
    others of its batch (before publication: the first after the canary)."""
    waiting = [t for t in rollout.tickets if t.state is TicketState.WAITING]
    if not waiting:
        return []
    batch = batch_of(rollout, waiting[0].number)[0]
    return [t for t in waiting if batch_of(rollout, t.number)[0] == batch]


def newly_next(before: Group, after: Group) -> tuple[str, ...]:
    """The instances whose ticket became one of the next to start between ``before`` and ``after``, in running
    rollouts: told to prepare (``tasks.prepare``). On a partial read, of the tickets the step read."""
    was = {r.id: {t.number for t in next_up(r)} for r in before.line}
    return tuple(t.instance for r in after.line if r.state is RolloutState.RUNNING
                 for t in next_up(r) if t.number not in was.get(r.id, set()))


def still_updating(rollout: Rollout) -> bool:
    """Tickets of the rollout are still updating (a halted batch finishing): resuming or retrying it waits."""
    return any(t.state is TicketState.UPDATING for t in rollout.tickets)
