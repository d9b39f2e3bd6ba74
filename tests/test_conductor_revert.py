"""The automatic revert (``on_failure: revert``): a halted code rollout's moved instances go back. Pure: no AWS.
The revert as the ledger writes it and the CLI shows it is in test_conductor_revert_ledger.py."""

from __future__ import annotations

import functools

import decidekit
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
    decide,
)
from skynet_tasks.conductor.revert import REVERT_FAILED, members_to_revert, needs_person, revert_id
from skynet_tasks.policy import PolicyError, parse_on_failure, parse_policy
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

pytestmark = pytest.mark.timeout(10)

FIVE = ("a", "b", "c", "d", "e")
REVERT = revert_id("r1")


run = functools.partial(decidekit.run, live=FIVE)  # events decided in turn, among five members


def dispatched(actions: list[object]) -> list[tuple[str, str, int]]:
    return [(a.instance, a.rollout_id, a.ticket) for a in actions if isinstance(a, Dispatch)]


def on_s1(on_failure: str = "revert", max_parallel: tuple[str, ...] = ("1",),
          kind: RolloutKind = RolloutKind.CODE, previous: str | None = "s0") -> Group:
    """A group of five on s0, its rollout r1 of s1 published (canary a succeeded), tickets 2 to 5 taken."""
    group = Group("g", desired_release=previous)
    rollout = Rollout(id="r1", group="g", release="s1", canary="a", max_parallel=max_parallel, update_timeout=60,
                      on_failure=on_failure, kind=kind)
    group, _ = run(group, RolloutReady(rollout), *(TicketTaken("r1", m) for m in "bcde"))
    group, _ = run(group, UpdateReported("r1", 1, "a", ok=True))
    return group


def fail_ticket_3(group: Group) -> tuple[Group, list[object]]:
    """b (ticket 2) succeeds, then c (ticket 3) fails."""
    group, _ = run(group, UpdateReported("r1", 2, "b", ok=True))
    return run(group, UpdateReported("r1", 3, "c", ok=False, error="health check failed"))


# -- the policy ---------------------------------------------------------------------------------------------------
def test_on_failure_is_halt_unless_skynet_yml_says_revert():
    assert parse_policy(None).on_failure == "halt"
    assert parse_policy({"on_failure": "revert"}).on_failure == "revert"
    assert parse_on_failure(" halt ") == "halt"


@pytest.mark.parametrize("value", ["rollback", "", 1, True, ["revert"]])
def test_an_unknown_failure_policy_is_refused_naming_the_key_and_the_choices(value: object):
    with pytest.raises(PolicyError, match=r"rollout\.on_failure: .* expected one of halt, revert"):
        parse_policy({"on_failure": value})


# -- which members, in which order --------------------------------------------------------------------------------
def test_a_failure_on_ticket_3_reverts_b_then_the_canary_a_to_the_previous_release():
    group, actions = fail_ticket_3(on_s1())
    halted, revert = group.rollout("r1"), group.rollout(REVERT)
    assert halted is not None and revert is not None
    assert halted.state is RolloutState.HALTED and halted.reverted_by == REVERT
    assert halted.reason == f"update failed on c (ticket 3): health check failed; reverted by {REVERT}"
    # c failed and put itself back; d and e never moved: only b and the canary a go back, a last.
    assert [(t.number, t.instance, t.state) for t in revert.tickets] == [
        (1, "b", TicketState.UPDATING), (2, "a", TicketState.WAITING)]
    assert revert.release == "s0" and revert.kind is RolloutKind.CODE and revert.revert_of == "r1"
    assert revert.published and revert.expected == ("b", "a")
    assert group.desired_release == "s0" and group.desired_rollout == REVERT
    assert dispatched(actions) == [("b", REVERT, 1)]  # in the same step as the halt

    group, actions = run(group, UpdateReported(REVERT, 1, "b", ok=True))
    assert dispatched(actions) == [("a", REVERT, 2)]
    group, actions = run(group, UpdateReported(REVERT, 2, "a", ok=True))
    assert actions == [] and group.rollout(REVERT) is None  # completed, left the line
    assert group.rollout("r1").state is RolloutState.HALTED  # type: ignore[union-attr]  # still says what happened
    assert group.desired_release == "s0" and group.previous_release == "s0"


def test_members_to_revert_are_the_latest_to_move_first_and_the_canary_last():
    group, _ = run(on_s1(), *(UpdateReported("r1", n, m, ok=True) for n, m in ((2, "b"), (3, "c"), (4, "d"))))
    group, _ = run(group, UpdateReported("r1", 5, "e", ok=False, error="boom"))
    assert members_to_revert(group.rollout("r1")) == ("d", "c", "b", "a")  # type: ignore[arg-type]


def test_a_revert_goes_in_the_halted_rollouts_batches_and_waits_for_its_batch_to_finish():
    group = on_s1(max_parallel=("2",))  # b and c update together, then d and e
    group, _ = run(group, UpdateReported("r1", 2, "b", ok=True), UpdateReported("r1", 3, "c", ok=True))
    group, actions = run(group, UpdateReported("r1", 4, "d", ok=False, error="boom"))
    revert = group.rollout(REVERT)
    assert revert is not None and revert.batches == (2,)
    # e is still updating in the halted batch: it is reverted too, and nothing of the revert starts before it ends.
    assert [t.instance for t in revert.tickets] == ["e", "c", "b", "a"]
    assert dispatched(actions) == []
    group, actions = run(group, UpdateReported("r1", 5, "e", ok=True))
    assert dispatched(actions) == [("e", REVERT, 1), ("c", REVERT, 2)]
    updating = [t for r in group.line for t in r.tickets if t.state is TicketState.UPDATING]
    assert len(updating) == 2


def test_a_passed_deadline_after_publication_reverts_too():
    group, actions = run(on_s1(), Tick(), now=100.0 + 61)  # b's ticket (60 s) passed its deadline
    halted = group.rollout("r1")
    assert halted is not None and halted.state is RolloutState.HALTED and halted.reverted_by == REVERT
    assert [t.instance for t in group.rollout(REVERT).tickets] == ["a"]  # type: ignore[union-attr]
    assert dispatched(actions) == []  # the line is held until b's late report or the hold passes


# -- when there is no revert ----------------------------------------------------------------------------------------
def test_the_default_halt_policy_starts_no_revert():
    group, actions = fail_ticket_3(on_s1(on_failure="halt"))
    assert group.rollout(REVERT) is None and dispatched(actions) == []
    assert group.rollout("r1").reason == "update failed on c (ticket 3): health check failed"  # type: ignore[union-attr]
    assert group.desired_release == "s1"


def test_a_canary_failure_before_publication_needs_no_revert():
    rollout = Rollout(id="r1", group="g", release="s1", canary="a", update_timeout=60, on_failure="revert")
    group, _ = run(Group("g", desired_release="s0"), RolloutReady(rollout))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=False, error="boom"))
    halted = group.rollout("r1")
    assert halted is not None and halted.state is RolloutState.HALTED and group.rollout(REVERT) is None
    assert "no revert needed: only the canary moved" in (halted.reason or "")
    assert group.desired_release == "s0"


def test_the_first_rollout_ever_halts_saying_there_is_no_previous_release():
    group, actions = fail_ticket_3(on_s1(previous=None))
    halted = group.rollout("r1")
    assert halted is not None and halted.state is RolloutState.HALTED and group.rollout(REVERT) is None
    assert halted.reason.endswith("no revert: the group has no previous release to go back to (its first rollout)")  # type: ignore[union-attr]
    assert dispatched(actions) == []


def test_config_rollouts_are_not_reverted():
    group, _ = fail_ticket_3(on_s1(kind=RolloutKind.CONFIG))
    assert group.rollout(REVERT) is None


# -- a revert that fails, idempotence, superseding ---------------------------------------------------------------
def test_a_revert_that_fails_halts_needing_a_person_and_is_not_reverted():
    group, _ = fail_ticket_3(on_s1())
    group, actions = run(group, UpdateReported(REVERT, 1, "b", ok=False, error="disk full"))
    revert = group.rollout(REVERT)
    assert revert is not None and revert.state is RolloutState.HALTED and needs_person(revert)
    assert revert.reason == f"{REVERT_FAILED}: update failed on b (ticket 1): disk full"
    assert [r.id for r in group.line] == ["r1", REVERT] and dispatched(actions) == []
    assert group.desired_release == "s0"


def test_the_same_failure_reported_twice_creates_one_revert():
    group, _ = fail_ticket_3(on_s1())
    again = decide(group, UpdateReported("r1", 3, "c", ok=False, error="health check failed"), 101.0, FIVE)
    assert not again.changed and again.actions == ()
    assert [r.id for r in group.line] == ["r1", REVERT]


def test_the_halted_rollout_does_not_supersede_its_revert_and_a_newer_push_supersedes_both():
    group, _ = fail_ticket_3(on_s1())
    group, _ = run(group, TicketTaken(REVERT, "b"), Tick())  # a member's heartbeat: nothing changes
    assert group.rollout(REVERT).state is RolloutState.RUNNING  # type: ignore[union-attr]
    newer = Rollout(id="r2", group="g", release="s2", canary="d", update_timeout=60, on_failure="revert")
    group, actions = run(group, RolloutReady(newer))
    assert dispatched(actions) == []  # b's revert update finishes first
    group, actions = run(group, UpdateReported(REVERT, 1, "b", ok=True))
    assert dispatched(actions) == [("d", "r2", 1)]
    assert group.rollout(REVERT) is None and group.rollout("r1") is None  # both superseded, left the line


def test_a_newer_rollout_already_in_line_takes_the_group_on_instead_of_a_revert():
    group = on_s1()
    newer = Rollout(id="r2", group="g", release="s2", canary="d", update_timeout=60)
    group, _ = run(group, RolloutReady(newer))
    group, _ = run(group, UpdateReported("r1", 2, "b", ok=False, error="boom"))
    assert group.rollout(REVERT) is None


def test_an_operator_can_pause_and_resume_a_revert():
    group, _ = fail_ticket_3(on_s1())
    group, _ = run(group, OperatorAction(REVERT, "pause"), UpdateReported(REVERT, 1, "b", ok=True))
    assert group.rollout(REVERT).state is RolloutState.PAUSED  # type: ignore[union-attr]
    group, actions = run(group, OperatorAction(REVERT, "resume"))
    assert dispatched(actions) == [("a", REVERT, 2)]
