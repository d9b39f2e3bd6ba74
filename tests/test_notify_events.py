"""Which notices a conductor step gives: each change of a rollout worth telling, once, decided by the real
conductor on data (no AWS)."""

from __future__ import annotations

import pytest

from skynet_tasks.conductor import (
    Group,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
    decide,
)
from skynet_tasks.notify.events import BadNotice, Notice, NoticeKind, from_message, notices
from skynet_tasks.states import RolloutKind, RolloutState

pytestmark = pytest.mark.timeout(30)

MEMBERS = ("a", "b", "c")
SHA = "5" * 40
OLD = "4" * 40


def steps(group: Group, *events: object, now: float = 100.0) -> tuple[Group, list[tuple[str, NoticeKind]]]:
    """Decide each event in turn; the group after them, and every notice as (rollout id, kind)."""
    told = []
    for event in events:
        decision = decide(group, event, now, MEMBERS)  # type: ignore[arg-type]
        told += [(n.rollout_id, n.kind) for n in notices(group, decision, now)]
        group = decision.group
    return group, told


def ready(rollout_id: str = "r1", canary: str | None = "a") -> RolloutReady:
    return RolloutReady(Rollout(id=rollout_id, group="g", release=SHA, canary=canary, update_timeout=60))


def test_a_rollout_that_succeeds_is_told_started_published_completed_in_that_order():
    _, told = steps(Group("g"), ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"),
                    UpdateReported("r1", 1, "a", ok=True), UpdateReported("r1", 2, "b", ok=True),
                    UpdateReported("r1", 3, "c", ok=True))

    assert told == [("r1", NoticeKind.STARTED), ("r1", NoticeKind.PUBLISHED), ("r1", NoticeKind.COMPLETED)]


def test_a_failure_is_told_halted_and_a_retry_resumed():
    group, _ = steps(Group("g"), ready(), TicketTaken("r1", "b"), UpdateReported("r1", 1, "a", ok=True))
    failed = UpdateReported("r1", 2, "b", ok=False, error="health check failed")
    decision = decide(group, failed, 100.0, MEMBERS)

    [halted] = notices(group, decision, 100.0)
    assert halted.kind is NoticeKind.HALTED and halted.state is RolloutState.HALTED
    assert halted.release == SHA and halted.rollout_kind is RolloutKind.CODE and "b" in (halted.reason or "")
    group = decision.group

    _, told = steps(group, OperatorAction("r1", "retry", "alice"))
    assert told == [("r1", NoticeKind.RESUMED)]


def test_redelivered_events_and_routine_steps_tell_nothing():
    group, _ = steps(Group("g"), ready(), TicketTaken("r1", "b"))

    _, told = steps(group, ready(), TicketTaken("r1", "b"), Tick(), OperatorAction("r1", "pause"))

    assert told == []  # the announcement and the ticket again, a tick, a pause: nothing for people


def test_a_rollout_without_canary_is_started_and_published_in_one_step():
    _, told = steps(Group("g"), ready(canary=None))

    assert told == [("r1", NoticeKind.STARTED), ("r1", NoticeKind.PUBLISHED)]


def test_abort_and_supersede_are_told():
    group, _ = steps(Group("g"), ready("r1"), TicketTaken("r1", "b"), UpdateReported("r1", 1, "a", ok=True))
    _, told = steps(group, OperatorAction("r1", "abort", "alice"))
    assert told == [("r1", NoticeKind.ABORTED)]

    # A newer release supersedes the older rollout at the next ticket boundary.
    _, told = steps(group, ready("r2", canary=None), UpdateReported("r1", 2, "b", ok=True))
    assert ("r1", NoticeKind.SUPERSEDED) in told and ("r2", NoticeKind.STARTED) in told


def test_a_halt_that_starts_an_automatic_revert_is_told_reverted_and_the_revert_started():
    # Given a published rollout that reverts on failure, in a group with a previous release
    group = Group("g", desired_release=OLD, previous_release=OLD)
    reverting = RolloutReady(Rollout(id="r1", group="g", release=SHA, canary="a", update_timeout=60,
                                     on_failure="revert"))
    group, _ = steps(group, reverting, TicketTaken("r1", "b"), TicketTaken("r1", "c"),
                     UpdateReported("r1", 1, "a", ok=True))

    # When ticket 2 fails
    decision = decide(group, UpdateReported("r1", 2, "b", ok=False, error="health check failed"), 100.0, MEMBERS)
    told = notices(group, decision, 100.0)

    # Then the halted rollout is told reverted, and its revert (a rollout of its own) started, marked a revert
    kinds = [(n.rollout_id, n.kind, n.revert) for n in told]
    assert kinds[0] == ("r1", NoticeKind.REVERTED, False), kinds
    [started] = [n for n in told if n.kind is NoticeKind.STARTED]
    assert started.revert and started.release == OLD and started.rollout_id != "r1"


def test_a_notice_survives_its_message_and_a_forged_one_is_refused():
    notice = Notice(NoticeKind.HALTED, "r1", "g", SHA, RolloutKind.CODE, RolloutState.HALTED, 12.5, "failed")

    assert from_message(notice.to_message()) == notice
    assert from_message(notice.to_message()).key == notice.key  # a resend is recognisably the same
    for forged in ({**notice.to_message(), "kind": "exploded"}, {**notice.to_message(), "at": "soon"},
                   {**notice.to_message(), "group": ""}, {**notice.to_message(), "reason": "x" * 501}, ["r1"]):
        with pytest.raises(BadNotice):
            from_message(forged)
