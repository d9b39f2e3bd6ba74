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

This module holds the field's side (the rules); the checks on each of the conductor's decisions are in
``modeldecisionskit``, the invariants and the end of a run in ``modelinvariantskit``.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from modeldecisionskit import ConductorSteps
from modelinvariantskit import INSTANCES, Invariants

from skynet_tasks.conductor import (
    REDISPATCH_AFTER,
    UPDATE_HARD_LIMIT,
    Dispatch,
    Event,
    Group,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.policy_windows import parse_windows
from skynet_tasks.states import RolloutState, TicketState

pytestmark = pytest.mark.timeout(240)

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


class RolloutModel(ConductorSteps, Invariants, RuleBasedStateMachine):
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


# SKYNET_MODEL_EXAMPLES=3000 explores further on demand (about 75 s on 2 cores).
EXAMPLES = int(os.environ.get("SKYNET_MODEL_EXAMPLES", "300"))
RolloutModel.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_rollout_state_machine = RolloutModel.TestCase
