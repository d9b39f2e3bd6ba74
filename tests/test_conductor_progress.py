"""The bake time and the progress deadline in the pure conductor, with an injected clock (``now``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skynet_tasks.conductor import (
    Dispatch,
    Group,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
    attention,
    decide,
)
from skynet_tasks.conductor.progress import stalled
from skynet_tasks.ledger.reads import Focus, partial_view
from skynet_tasks.policy_windows import parse_windows
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

pytestmark = pytest.mark.timeout(10)

MEMBERS = ("a", "b", "c")


def ready(progress_deadline: float | None = 100.0, bake: float = 0.0, timeout: float = 500.0,
          rollout_id: str = "r1", kind: RolloutKind = RolloutKind.CODE, canary: str | None = "a") -> RolloutReady:
    # The ticket timeout is longer than the deadline here, so that only the progress deadline can halt
    # (skynet.yml refuses that pairing: policy.check_timing; the conductor does not rely on it).
    return RolloutReady(Rollout(id=rollout_id, group="g", release=f"s-{rollout_id}", kind=kind, canary=canary,
                                update_timeout=timeout, min_healthy_time=bake, progress_deadline=progress_deadline))


def at(group: Group, now: float, *events: object) -> tuple[Group, list[object]]:
    """The group after ``events``, each decided at ``now``, and every action they took."""
    actions: list[object] = []
    for event in events:
        decision = decide(group, event, now, MEMBERS)  # type: ignore[arg-type]
        group = decision.group
        actions += decision.actions
    return group, actions


def acknowledged(group: Group, when: float, rollout_id: str = "r1") -> Group:
    """The group once the instances of its updating tickets acknowledged them (``Ledger.acknowledge_ticket``)."""
    found = rollout(group, rollout_id)
    for ticket in found.tickets:
        if ticket.state is TicketState.UPDATING:
            found = found.with_ticket(replace(ticket, acknowledged_at=when))
    return replace(group, line=tuple(found if r.id == rollout_id else r for r in group.line))


def rollout(group: Group, rollout_id: str = "r1") -> Rollout:
    found = group.rollout(rollout_id)
    assert found is not None
    return found


def test_a_tickets_deadline_includes_the_bake_so_a_long_bake_is_not_overdue():
    group, actions = at(Group("g"), 0.0, ready(progress_deadline=None, bake=30.0, timeout=60.0))
    assert actions[-1] == Dispatch("a", "r1", 1)
    canary = rollout(group).ticket(1)
    assert canary is not None and canary.deadline == 90.0
    group = acknowledged(group, 1.0)
    group, _ = at(group, 80.0, Tick())  # past the update timeout, still baking
    assert rollout(group).state is RolloutState.RUNNING
    assert attention(group, 80.0) is None
    group, _ = at(group, 91.0, Tick())
    assert rollout(group).state is RolloutState.HALTED
    assert "deadline passed" in (rollout(group).reason or "")


def test_the_progress_clock_starts_at_the_first_dispatch_and_a_stalled_rollout_halts_naming_its_deadline():
    group, _ = at(Group("g"), 10.0, ready(), TicketTaken("r1", "b"))
    assert rollout(group).progress_at == 10.0
    group = acknowledged(group, 11.0)
    group, _ = at(group, 110.0, Tick())  # exactly the deadline: not passed yet
    assert rollout(group).state is RolloutState.RUNNING
    assert attention(group, 110.5) == "a rollout passed its progress deadline: it halts"
    group, actions = at(group, 110.5, Tick())
    halted = rollout(group)
    assert halted.state is RolloutState.HALTED and actions == []
    assert halted.reason == "progress deadline passed: no instance became healthy in 100s " \
                            "(rollout.progress_deadline 100s)"
    assert [t.state for t in halted.tickets] == [TicketState.UPDATING, TicketState.CANCELLED]
    # The canary's update, still running, is recorded when it reports; nothing more starts.
    group, actions = at(group, 120.0, UpdateReported("r1", 1, "a", ok=True))
    assert not [a for a in actions if isinstance(a, Dispatch)] and rollout(group).state is RolloutState.HALTED


def test_each_instance_that_becomes_healthy_restarts_the_clock():
    group, _ = at(Group("g"), 0.0, ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, actions = at(group, 90.0, UpdateReported("r1", 1, "a", ok=True))  # the canary: published
    assert actions == [Dispatch("b", "r1", 2)] and rollout(group).progress_at == 90.0
    group, _ = at(group, 180.0, Tick())  # 180 s after the first dispatch, 90 s after the last healthy one
    assert rollout(group).state is RolloutState.RUNNING
    group, actions = at(group, 185.0, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [Dispatch("c", "r1", 3)] and rollout(group).progress_at == 185.0
    group, _ = at(group, 284.0, Tick())
    assert rollout(group).state is RolloutState.RUNNING
    group, _ = at(group, 286.0, Tick())
    assert rollout(group).state is RolloutState.HALTED


def test_a_rollout_without_a_progress_deadline_never_halts_for_want_of_progress():
    group, _ = at(Group("g"), 0.0, ready(progress_deadline=None, timeout=3600.0))
    group = acknowledged(group, 1.0)
    group, _ = at(group, 3000.0, Tick())
    assert rollout(group).state is RolloutState.RUNNING
    assert attention(group, 3000.0) is None


def test_a_paused_rollout_does_not_stall_and_its_clock_restarts_when_resumed():
    group, _ = at(Group("g"), 0.0, ready(), TicketTaken("r1", "b"))
    group, _ = at(group, 50.0, UpdateReported("r1", 1, "a", ok=True))  # b updates from 50
    group, _ = at(group, 60.0, OperatorAction("r1", "pause"))
    group, _ = at(group, 70.0, UpdateReported("r1", 2, "b", ok=True))
    group, _ = at(group, 500.0, Tick())
    assert rollout(group).state is RolloutState.PAUSED
    group, _ = at(group, 600.0, OperatorAction("r1", "resume"))
    assert rollout(group).state is RolloutState.RUNNING and rollout(group).progress_at == 600.0
    group, _ = at(group, 650.0, Tick())
    assert rollout(group).state is RolloutState.RUNNING


def test_a_retry_after_a_progress_halt_gives_the_rollout_a_fresh_deadline():
    group, _ = at(Group("g"), 0.0, ready())
    group, _ = at(group, 101.0, Tick())
    assert rollout(group).state is RolloutState.HALTED
    group, _ = at(group, 102.0, UpdateReported("r1", 1, "a", ok=False, error="health check failed"))
    group, actions = at(group, 200.0, OperatorAction("r1", "retry"))
    assert actions == [Dispatch("a", "r1", 1)] and rollout(group).progress_at == 200.0
    group, _ = at(group, 250.0, Tick())
    assert rollout(group).state is RolloutState.RUNNING


def test_a_rollout_waiting_behind_another_kinds_starts_its_clock_only_at_its_first_dispatch():
    group, _ = at(Group("g"), 0.0, ready(progress_deadline=None))
    group, _ = at(group, 1.0, ready(rollout_id="c1", kind=RolloutKind.CONFIG, canary="b"))
    assert rollout(group, "c1").progress_at is None  # in line, nothing of it dispatched
    group, _ = at(group, 300.0, Tick())
    assert rollout(group, "c1").state is RolloutState.RUNNING
    group, actions = at(group, 310.0, UpdateReported("r1", 1, "a", ok=True))
    assert Dispatch("b", "c1", 1) in actions and rollout(group, "c1").progress_at == 310.0


def test_a_partial_view_of_the_line_sees_the_same_clock():
    group, _ = at(Group("g"), 0.0, ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, _ = at(group, 40.0, UpdateReported("r1", 1, "a", ok=True), UpdateReported("r1", 2, "b", ok=True))
    view = partial_view(group, Focus())
    assert [t.number for t in rollout(view).tickets] == [3]  # the done tickets are not in it
    assert rollout(view).progress_at == rollout(group).progress_at == 40.0
    assert not stalled(rollout(view), 140.0) and stalled(rollout(view), 140.5)


def test_waiting_for_a_promotion_is_not_a_stall_and_the_promotion_starts_the_clock_again():
    # Given a manual rollout whose canary succeeded at t=50, with a progress deadline of 100 s
    manual = RolloutReady(replace(ready().rollout, promotion="manual"))
    group, _ = at(Group("g"), 0.0, manual, TicketTaken("r1", "b"))
    group = acknowledged(group, 1.0)
    group, _ = at(group, 50.0, UpdateReported("r1", 1, "a", ok=True))
    assert not rollout(group).published

    # When nobody promotes it for far longer than the deadline, then it still waits, not halted
    group, _ = at(group, 1000.0, Tick())
    assert rollout(group).state is RolloutState.RUNNING and not stalled(rollout(group), 1000.0)

    # When a person promotes it, its clock starts then: the deadline counts from the promotion
    group, _ = at(group, 1010.0, OperatorAction("r1", "promote", "alice"))
    assert rollout(group).published and rollout(group).progress_at == 1010.0


def test_waiting_for_a_maintenance_window_is_not_a_stall():
    # Given a rollout with a deadline of 100 s and a window of 08:00-09:00 UTC, whose ticket 2 is done just
    # after the window closed, so that ticket 3 waits for the next window
    windowed = RolloutReady(replace(ready().rollout, windows=parse_windows([{"hours": "08:00-09:00"}])))
    opened = 8 * 3600.0  # 1970-01-01 08:00 UTC
    group, _ = at(Group("g"), opened, windowed, TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group = acknowledged(group, opened + 1)
    group, _ = at(group, opened + 3590, UpdateReported("r1", 1, "a", ok=True))
    group = acknowledged(group, opened + 3591)
    group, _ = at(group, opened + 3601, UpdateReported("r1", 2, "b", ok=True))
    assert "waiting for its window" in (rollout(group).reason or "")

    # When ticks come two hours later, the window still closed
    group, _ = at(group, opened + 2 * 3600, Tick())

    # Then it still waits for the next window: not halted
    assert rollout(group).state is RolloutState.RUNNING, rollout(group).reason
    assert "waiting for its window" in (rollout(group).reason or "")

    # When the window opens the next day, ticket 3 starts and the clock starts again then
    group, _ = at(group, opened + 86400, Tick())
    assert rollout(group).ticket(3).state is TicketState.UPDATING
    assert rollout(group).progress_at == opened + 86400
