"""What the rollout model (``test_conductor_model.RolloutModel``) checks between any two steps (at most a batch
updating, one ticket per member, none served twice, no waiting ticket forgotten, every instance on a release it
verified), and at its end: the cluster, left to settle with no more faults, is not stuck, and a last revert took
its members back or says it needs a person.
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from skynet_tasks.conductor import REDISPATCH_AFTER, Dispatch, Event, Group, OperatorAction, Rollout
from skynet_tasks.conductor.batches import batch_of
from skynet_tasks.conductor.promotion import awaiting
from skynet_tasks.conductor.revert import REVERT_FAILED
from skynet_tasks.conductor.windows import closed, next_opening, waits
from skynet_tasks.states import RolloutState, TicketState

INSTANCES = ("i1", "i2", "i3", "i4", "i5")


class Invariants:
    """The model's invariants and its end. Mixed into ``RolloutModel``, whose state it reads and whose steps
    (``conduct``, ``receive``, ``finish``, ``heartbeat``) the end runs until nothing is left to do."""

    group: Group
    now: float
    live: set[str]
    pending: list[Event]
    inbox: list[Dispatch]
    busy: dict[str, tuple[str, int, str, int, float]]
    installed: dict[str, str]
    verified: dict[str, set[str]]
    successes: dict[tuple[str, int], int]
    known: dict[str, Rollout]

    # ---- invariants ------------------------------------------------------------------------------------------
    def check_one_batch(self, what: str, tickets: list[tuple[str, int]]) -> None:
        """The tickets are of one rollout and one of its batches, and no more than that batch's size."""
        if not tickets:
            return
        rollouts = {rollout_id for rollout_id, _ in tickets}
        assert len(rollouts) == 1, f"{what}: tickets of several rollouts {tickets}"
        rollout = self.known[rollouts.pop()]
        batches = {batch_of(rollout, number) for _, number in tickets}
        assert len(batches) == 1, f"{what}: tickets of several batches {tickets} of {rollout.batches}"
        (_, size), = batches
        assert len(tickets) <= size, f"{what}: {tickets} in a batch of {size} ({rollout.max_parallel})"

    @invariant()
    def at_most_a_batch_updating(self) -> None:
        """Never more than ``max_parallel`` (the current batch's size) updating, in the ledger or in fact
        (an instance is out of the proxy only while it runs an update)."""
        self.check_one_batch("ledger", [(r.id, t.number) for r in self.group.line for t in r.tickets
                                        if t.state is TicketState.UPDATING])
        self.check_one_batch("instances", [(r, n) for r, n, *_ in self.busy.values()])

    @invariant()
    def one_ticket_per_member_and_no_ticket_served_twice(self) -> None:
        for rollout in self.group.line:
            holders = [t.instance for t in rollout.tickets]
            assert len(holders) == len(set(holders)), f"{rollout.id}: {holders}"
            for ticket in rollout.tickets:
                if ticket.state is TicketState.WAITING and ticket.attempts == 1:  # (a retried one goes again)
                    later = [t.number for t in rollout.tickets if t.number > ticket.number
                             and t.state in (TicketState.UPDATING, TicketState.DONE)]
                    assert not later, f"{rollout.id}: tickets {later} served while {ticket.number} waits"
        assert all(count == 1 for count in self.successes.values()), self.successes

    @invariant()
    def no_waiting_ticket_is_forgotten(self) -> None:
        # A held line waits for its hold to pass and the next heartbeat's tick (the teardown checks it goes on).
        if self.group.line and self.group.updating() is None and all(r.held_until is None for r in self.group.line) \
                and not awaiting(self.group.line[-1]) and not waits(self.group.line[-1]):
            # (a rollout waiting for promotion waits for an operator; one waiting for its window, for a tick)
            newest = self.group.line[-1]
            waiting = [t.number for t in newest.tickets if t.state is TicketState.WAITING]
            assert newest.state is not RolloutState.RUNNING or not waiting, \
                f"{newest.id} is running with waiting tickets {waiting} and nothing updating"

    @invariant()
    def every_instance_runs_a_release_it_verified(self) -> None:
        for instance, release in self.installed.items():
            assert release in self.verified[instance]

    def teardown(self) -> None:
        """No more faults: deliver everything, let updates succeed, beat hearts. Nothing may stay stuck."""
        if not hasattr(self, "group"):
            return
        self.live = set(INSTANCES)
        for _ in range(1000):
            if self.pending:
                self.conduct(self.pending.pop(0))
            elif self.busy:
                self.finish(next(iter(self.busy)), True)
            elif self.inbox:
                self.receive(self.inbox.pop(0))
            else:
                newest = self.group.line[-1] if self.group.line else None
                if newest is None or newest.state is not RolloutState.RUNNING:
                    break
                if awaiting(newest):  # the operator promotes it (its timeout may abort it first)
                    self.pending.append(OperatorAction(newest.id, "promote", "model"))
                self.now += REDISPATCH_AFTER + 1
                if waits(newest) and closed(newest, self.now):  # nothing happens before its window opens
                    self.now = next_opening(newest.windows, self.now) or self.now
                for instance in INSTANCES:
                    self.heartbeat(instance)
            self.at_most_a_batch_updating()
            self.one_ticket_per_member_and_no_ticket_served_twice()
        newest = self.group.line[-1] if self.group.line else None
        assert newest is None or newest.state is not RolloutState.RUNNING, (
            f"rollout {newest.id} is stuck running: {newest.tickets}")
        self.check_last_revert()

    def check_last_revert(self) -> None:
        """When the last rollout to join the line is a revert: every member it took back runs the previous
        release again, or the revert halted and says it needs a person (or an operator paused or aborted it)."""
        last = list(self.known.values())[-1] if self.known else None
        if last is None or last.revert_of is None:
            return
        halted = self.known[last.revert_of]
        assert halted.reverted_by == last.id and halted.state in (RolloutState.HALTED, RolloutState.ABORTED), halted
        # (an operator may abort the halted rollout after its revert started: its reason then says so)
        assert f"reverted by {last.id}" in (halted.reason or "") or halted.state is RolloutState.ABORTED
        if last.state is RolloutState.COMPLETED:
            for ticket in last.tickets:
                if ticket.state is TicketState.DONE:
                    assert self.installed[ticket.instance] == last.release, f"{ticket.instance} not back"
        elif last.state is RolloutState.HALTED:
            assert (last.reason or "").startswith(REVERT_FAILED), last.reason
        else:
            assert last.state in (RolloutState.ABORTED, RolloutState.PAUSED), f"{last.id} is {last.state}"


