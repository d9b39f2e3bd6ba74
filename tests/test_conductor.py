"""The rollout state machine, as data: no AWS, no workers. A rollout's canary, its tickets served in turn, halts,
supersession, operator actions and config rollouts; what a step reads and when a line needs a tick are in
test_conductor_reads_and_ticks.py."""

from __future__ import annotations

from decidekit import MEMBERS, ready, run, states

from skynet_tasks.conductor import (
    UPDATE_HARD_LIMIT,
    Dispatch,
    Group,
    Notify,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    Ticket,
    TicketTaken,
    UpdateReported,
    decide,
)
from skynet_tasks.conductor.draft import REMIND_AFTER
from skynet_tasks.states import RolloutKind, RolloutState, TicketState


def test_the_canary_updates_first_while_the_others_line_up_and_its_success_starts_the_next_at_once():
    group, actions = run(Group("g"), ready())
    assert actions == [Notify(("b", "c"), "r1"), Dispatch("a", "r1", 1)]
    assert group.desired_release is None

    # The others' tickets wait while the canary updates: nothing starts before publication.
    group, actions = run(group, TicketTaken("r1", "c"), TicketTaken("r1", "b"))
    assert actions == [] and states(group) == {"a": "updating", "c": "waiting", "b": "waiting"}

    # The canary's success publishes the release and hands the turn on in the same step.
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True))
    assert group.desired_release == "s1"
    assert actions == [Dispatch("c", "r1", 2)]  # c asked first; everyone holds a ticket: no notification


def test_a_failed_canary_cancels_the_tickets_taken_while_it_updated():
    group, _ = run(Group("g"), ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=False, error="health check failed"))
    assert actions == [] and group.desired_release is None
    assert states(group) == {"a": "failed", "b": "cancelled", "c": "cancelled"}
    retried, actions = run(group, OperatorAction("r1", "retry"))
    assert actions == [Dispatch("a", "r1", 1)]  # the canary again first, the others after its success
    assert states(retried) == {"a": "updating", "b": "waiting", "c": "waiting"}


def test_a_late_publication_tells_the_members_that_joined_since_and_a_prompt_one_leaves_them_to_their_heartbeat():
    started, actions = run(Group("g"), ready(), live=("a", "b"))
    assert actions == [Notify(("b",), "r1"), Dispatch("a", "r1", 1)]
    started, _ = run(started, TicketTaken("r1", "b"))
    # The canary succeeds seconds later; c has joined meanwhile: it takes its ticket at its next heartbeat
    # (tasks.re_register), and nobody is told again while the first requests may still be on their way.
    _, actions = run(started, UpdateReported("r1", 1, "a", ok=True), now=110.0)
    assert actions == [Dispatch("b", "r1", 2)]
    # Minutes later (a slow canary), c is told; a member holding a ticket by then asks for none (again).
    _, actions = run(started, UpdateReported("r1", 1, "a", ok=True), now=100.0 + REMIND_AFTER + 1)
    assert actions == [Notify(("c",), "r1", again=True), Dispatch("b", "r1", 2)]


def test_tickets_are_served_one_at_a_time_in_order_and_the_rollout_completes():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True))
    group, actions = run(group, TicketTaken("r1", "c"), TicketTaken("r1", "b"))
    assert actions == [Dispatch("c", "r1", 2)]  # c asked first
    assert states(group) == {"a": "done", "c": "updating", "b": "waiting"}

    group, actions = run(group, UpdateReported("r1", 2, "c", ok=True))
    assert actions == [Dispatch("b", "r1", 3)]
    group, actions = run(group, UpdateReported("r1", 3, "b", ok=True))
    assert actions == []
    assert group.line == ()  # completed rollouts leave the line


def test_a_failed_update_halts_the_rollout_and_cancels_the_waiting_tickets():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True),
                   TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=False, error="health check failed"))
    rollout = group.rollout("r1")
    assert rollout is not None and rollout.state is RolloutState.HALTED
    assert states(group) == {"a": "done", "b": "failed", "c": "cancelled"}
    assert actions == []
    # A halted rollout dispatches nothing, whatever arrives.
    group, actions = run(group, TicketTaken("r1", "c"), Tick(), UpdateReported("r1", 3, "c", ok=True))
    assert actions == []


def test_duplicated_events_change_nothing():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"))
    for event in (ready(), TicketTaken("r1", "b"), UpdateReported("r1", 1, "a", ok=True)):
        decision = decide(group, event, 100.0, MEMBERS)
        assert not decision.changed and decision.actions == ()


def test_an_overdue_ticket_halts_the_rollout_at_its_deadline_and_not_before():
    group, _ = run(Group("g"), ready(timeout=30), now=100.0)
    assert not decide(group, Tick(), 129.0, MEMBERS).changed
    decision = decide(group, Tick(), 131.0, MEMBERS)
    rollout = decision.group.rollout("r1")
    assert rollout is not None and rollout.state is RolloutState.HALTED
    assert rollout.tickets[0].state is TicketState.FAILED and "deadline" in (rollout.tickets[0].error or "")


def test_a_newer_release_waits_for_the_update_in_flight_then_supersedes():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True),
                   TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    # b is updating for r1 when r2 is built by c.
    group, actions = run(group, ready("r2", "s2", canary="c"))
    assert actions == [Notify(("a", "b"), "r2")]  # they line up; never two updating at once
    assert group.updating() is not None and group.updating()[1].instance == "b"  # type: ignore[index]
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [Dispatch("c", "r2", 1)]
    old = decide(group, Tick(), 100.0, MEMBERS)  # r1 has left the line
    assert old.group.rollout("r1") is None


def test_a_new_release_supersedes_a_halted_rollout():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=False, error="boom"))
    decision = decide(group, ready("r2", "s2", canary="b"), 100.0, MEMBERS)
    superseded = next(r for r in decision.touched if r.id == "r1")
    assert superseded.state is RolloutState.SUPERSEDED and superseded.superseded_by == "r2"
    assert decision.actions == (Notify(("a", "c"), "r2"), Dispatch("b", "r2", 1))


def test_a_member_that_left_does_not_hold_up_completion():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"),
                   UpdateReported("r1", 2, "b", ok=True))
    assert group.rollout("r1") is not None  # c has not taken its ticket yet
    decision = decide(group, Tick(), 200.0, ("a", "b"))  # c's heartbeat went stale
    assert decision.group.line == ()


def test_resume_and_retry_after_a_halt():
    halted, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"),
                    TicketTaken("r1", "c"), UpdateReported("r1", 2, "b", ok=False, error="x"))
    resumed, actions = run(halted, OperatorAction("r1", "resume", "ops"))
    assert actions == [Dispatch("c", "r1", 3)]  # the failed ticket stays failed
    retried, actions = run(halted, OperatorAction("r1", "retry", "ops"))
    assert actions == [Dispatch("b", "r1", 2)]  # the failed ticket goes again, first
    assert retried.rollout("r1").ticket(2).attempts == 2  # type: ignore[union-attr]


def test_pause_stops_dispatching_and_abort_lets_the_update_in_flight_finish():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"),
                   TicketTaken("r1", "c"))
    paused, actions = run(group, OperatorAction("r1", "pause"), UpdateReported("r1", 2, "b", ok=True))
    assert actions == [] and states(paused)["c"] == "waiting"
    aborted, actions = run(group, OperatorAction("r1", "abort"))
    assert aborted.updating() is not None  # b's update is still in flight and still holds the group
    done, actions = run(aborted, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [] and done.line == ()


def test_resume_after_a_failed_canary_changes_nothing_only_retry_goes_on():
    # Found by the model test: resuming went on without a published release and stalled forever.
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=False, error="health check failed"))
    assert group.rollout("r1").state is RolloutState.HALTED

    resumed, actions = run(group, OperatorAction("r1", "resume"))
    assert resumed.rollout("r1").state is RolloutState.HALTED and actions == []

    retried, actions = run(group, OperatorAction("r1", "retry"))
    assert retried.rollout("r1").state is RolloutState.RUNNING
    assert actions == [Dispatch("a", "r1", 1)]
    assert retried.rollout("r1").ticket(1).attempts == 2


def config_ready(rollout_id: str = "c1", version: str = "cfg-1", canary: str | None = "a") -> RolloutReady:
    return RolloutReady(Rollout(id=rollout_id, group="g", release=version, kind=RolloutKind.CONFIG, canary=canary))


def test_a_config_rollout_waits_its_turn_behind_a_code_rollout_instead_of_superseding_it():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"))
    assert states(group) == {"a": "done", "b": "updating"}

    # A config push arrives while b updates its code: nothing else is dispatched meanwhile.
    group, actions = run(group, config_ready(canary="c"))
    assert actions == [Notify(("a", "b"), "c1")]
    # b's report frees the line: the code rollout is still running (c has not taken its ticket),
    # so the config canary goes next, and the code rollout is not superseded.
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [Dispatch("c", "c1", 1)]
    assert group.rollout("r1") is not None and group.rollout("r1").state is RolloutState.RUNNING
    group, actions = run(group, TicketTaken("r1", "c"))
    assert actions == []  # one update at a time across kinds
    group, actions = run(group, UpdateReported("c1", 1, "c", ok=True))
    assert Dispatch("c", "r1", 3) in actions
    # Publishing a config version does not make it the group's release.
    assert group.desired_release == "s1"


def test_a_newer_config_rollout_supersedes_an_older_config_rollout_only():
    group, _ = run(Group("g"), ready(), config_ready("c1", "cfg-1", canary=None))
    group, _ = run(group, config_ready("c2", "cfg-2", canary=None))
    group, _ = run(group, UpdateReported("r1", 1, "a", ok=True))  # supersession happens at a ticket boundary
    assert {r.id: str(r.state) for r in group.line} == {"r1": "running", "c2": "running"}


def test_after_a_missed_deadline_nothing_starts_until_the_late_report_or_the_task_limit():
    # Found by the model test: the update message of an instance busy elsewhere started after its
    # ticket's deadline; the conductor failed the ticket and a newer rollout's canary started
    # while the late update still ran. Now a late message is refused (Ledger.acknowledge_ticket),
    # and an update started in time may run until the task's hard limit: the line waits for it.
    group, _ = run(Group("g"), ready(timeout=30), ready("r2", "s2", canary="b"), now=100.0)
    group, actions = run(group, Tick(), now=131.0)
    assert actions == [] and states(group) == {"a": "failed"}
    assert group.rollout("r1") is not None  # halted, superseded, yet still in line: it holds it
    group, actions = run(group, Tick(), now=100.0 + 30 + UPDATE_HARD_LIMIT - 1)
    assert actions == []

    late, actions = run(group, UpdateReported("r1", 1, "a", ok=False, error="rolled back"), now=200.0)
    assert actions == [Dispatch("b", "r2", 1)]  # the late report: a has stopped, the line goes on
    assert [r.id for r in late.line] == ["r2"]

    group, actions = run(group, Tick(), now=100.0 + 30 + UPDATE_HARD_LIMIT + 1)
    assert actions == [Dispatch("b", "r2", 1)]  # or the hold passes
    assert [r.id for r in group.line] == ["r2"]


def test_nobody_but_the_canary_starts_before_publication_whatever_the_line_holds():
    # Not reachable through events today (the canary's ticket is number 1, and tickets start in
    # number order); the guard keeps "nothing before the canary succeeded" independent of that.
    rollout = Rollout(id="r1", group="g", release="s1", canary="a", last_number=2, tickets=(
        Ticket(1, "a", state=TicketState.CANCELLED), Ticket(2, "b")))
    decision = decide(Group("g", line=(rollout,)), Tick(), 100.0, MEMBERS)
    assert decision.actions == () and states(decision.group) == {"a": "cancelled", "b": "waiting"}


def test_a_turn_handed_on_by_a_report_starts_its_handoff_at_the_report_and_an_instances_clock_is_bounded():
    group, _ = run(Group("g"), ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    for reported_at, handed_at in ((99.4, 99.4),  # the report's time, by the reporter's clock
                                   (130.0, 100.0),  # from the future: not ahead of the conductor's now
                                   (-9000.0, 100.0 - 3600.0),  # from long ago: at most an hour back
                                   (None, 100.0)):  # an older agent's report carries none: the dispatch
        after, _ = run(group, UpdateReported("r1", 1, "a", ok=True, reported_at=reported_at))
        rollout = after.rollout("r1")
        assert rollout is not None and rollout.ticket(2) is not None
        assert rollout.ticket(2).handed_at == handed_at and rollout.ticket(2).started_at == 100.0  # type: ignore
    # A turn the conductor hands on by itself (the canary's) starts at the dispatch
    assert group.rollout("r1").ticket(1).handed_at == 100.0  # type: ignore[union-attr]
