"""Batches (``max_parallel``): how many of a group's instances the conductor updates at once. Pure: no AWS."""

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
    attention,
)
from skynet_tasks.conductor.batches import batch_of, newly_next, window
from skynet_tasks.ledger.reads import Focus, open_window, partial_view

pytestmark = pytest.mark.timeout(10)

FIVE = ("a", "b", "c", "d", "e")


def ready(max_parallel: tuple[str, ...], canary: str | None = "a") -> RolloutReady:
    return RolloutReady(Rollout(id="r1", group="g", release="s1", canary=canary, max_parallel=max_parallel,
                                update_timeout=60))


run = functools.partial(decidekit.run, live=FIVE)  # events decided in turn, among five members


def states(group: Group) -> dict[str, str]:
    rollout = group.rollout("r1")
    assert rollout is not None
    return {t.instance: str(t.state) for t in rollout.tickets}


def published(max_parallel: tuple[str, ...]) -> tuple[Group, list[object]]:
    """A group of five whose canary a succeeded while b, c, d and e took their tickets (2 to 5)."""
    group, _ = run(Group("g"), ready(max_parallel), *(TicketTaken("r1", m) for m in "bcde"))
    return run(group, UpdateReported("r1", 1, "a", ok=True))


def test_a_batch_of_two_in_a_group_of_five_the_canary_alone_then_two_then_two():
    group, actions = run(Group("g"), ready(("2",)), *(TicketTaken("r1", m) for m in "bcde"))
    assert [a for a in actions if isinstance(a, Dispatch)] == [Dispatch("a", "r1", 1)]  # the canary stays alone

    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True))
    assert actions == [Dispatch("b", "r1", 2), Dispatch("c", "r1", 3)]
    assert group.rollout("r1").batches == (2,)  # type: ignore[union-attr]

    # One of the batch done: the next batch waits for the other (Ansible's serial, not a sliding window).
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [] and states(group)["d"] == "waiting"
    group, actions = run(group, UpdateReported("r1", 3, "c", ok=True))
    assert actions == [Dispatch("d", "r1", 4), Dispatch("e", "r1", 5)]
    group, _ = run(group, UpdateReported("r1", 4, "d", ok=True), UpdateReported("r1", 5, "e", ok=True))
    assert group.rollout("r1") is None and group.desired_release == "s1"  # completed, left the line


def test_the_default_of_one_keeps_one_ticket_at_a_time():
    group, actions = published(("1",))
    assert actions == [Dispatch("b", "r1", 2)]


def test_a_percentage_is_of_the_group_at_publication():
    group, actions = published(("40%",))  # 40% of 5 members
    assert actions == [Dispatch("b", "r1", 2), Dispatch("c", "r1", 3)]


def test_a_ramp_takes_each_size_in_turn_and_repeats_the_last():
    group, _ = run(Group("g"), ready(("1", "2", "25%")), *(TicketTaken("r1", m) for m in "bcdefghi"),
                   live=tuple("abcdefghi"))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True), live=tuple("abcdefghi"))
    assert actions == [Dispatch("b", "r1", 2)]  # 1
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True), live=tuple("abcdefghi"))
    assert actions == [Dispatch("c", "r1", 3), Dispatch("d", "r1", 4)]  # 2
    group, actions = run(group, UpdateReported("r1", 3, "c", ok=True), UpdateReported("r1", 4, "d", ok=True),
                         live=tuple("abcdefghi"))
    assert actions == [Dispatch("e", "r1", 5), Dispatch("f", "r1", 6)]  # 25% of 9: 2, and 2 again after
    rollout = group.rollout("r1")
    assert rollout is not None and rollout.batches == (1, 2, 2)
    assert [batch_of(rollout, n)[0] for n in range(1, 10)] == [-1, 0, 1, 1, 2, 2, 3, 3, 4]


def test_a_ticket_taken_while_its_batch_updates_joins_it():
    group, _ = run(Group("g"), ready(("3",)), TicketTaken("r1", "b"))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True))
    assert actions == [Dispatch("b", "r1", 2)]  # c, d and e were told at the start; their requests come now
    group, actions = run(group, TicketTaken("r1", "c"), TicketTaken("r1", "d"), TicketTaken("r1", "e"))
    assert actions == [Dispatch("c", "r1", 3), Dispatch("d", "r1", 4)]  # the batch of three is full: e waits
    assert states(group)["e"] == "waiting"


def test_a_failure_halts_the_rollout_and_the_rest_of_the_batch_finishes_but_nothing_new_starts():
    group, _ = published(("2",))
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=False, error="health check failed"))
    rollout = group.rollout("r1")
    assert actions == [] and rollout is not None and rollout.state == "halted"
    assert states(group) == {"a": "done", "b": "failed", "c": "updating", "d": "cancelled", "e": "cancelled"}

    # The rest of the batch reports: recorded, the halt (and its reason) stays, nothing is dispatched.
    group, actions = run(group, UpdateReported("r1", 3, "c", ok=False, error="second failure"))
    rollout = group.rollout("r1")
    assert actions == [] and rollout is not None and rollout.state == "halted"
    assert rollout.reason is not None and "ticket 2" in rollout.reason
    assert states(group)["c"] == "failed"


def test_retry_waits_until_the_halted_batch_has_finished():
    group, _ = published(("2",))
    group, _ = run(group, UpdateReported("r1", 2, "b", ok=False, error="boom"))
    unchanged, actions = run(group, OperatorAction("r1", "retry"))
    assert actions == [] and unchanged.rollout("r1").state == "halted"  # type: ignore[union-attr]

    group, _ = run(group, UpdateReported("r1", 3, "c", ok=True))
    group, actions = run(group, OperatorAction("r1", "retry"))
    assert actions == [Dispatch("b", "r1", 2)]  # the failed ticket again, alone: the rest of its batch is done
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True))
    assert actions == [Dispatch("d", "r1", 4), Dispatch("e", "r1", 5)]


def test_every_overdue_ticket_of_a_batch_fails_and_only_time_ends_a_hold_of_two():
    group, _ = published(("2",))
    group, actions = run(group, Tick(), now=161.0)
    rollout = group.rollout("r1")
    assert rollout is not None and rollout.state == "halted"
    assert states(group)["b"] == "failed" and states(group)["c"] == "failed"
    assert rollout.held_by is None and rollout.held_until is not None and rollout.held_until > 161.0


def test_one_overdue_ticket_of_a_batch_halts_and_the_other_is_acknowledged():
    group, _ = published(("2",))
    rollout = group.rollout("r1")
    assert rollout is not None
    late = rollout.ticket(3)
    assert late is not None
    group = Group("g", line=(rollout.with_ticket(late.__class__(**{**late.__dict__, "deadline": 500.0})),))
    assert attention(group, 161.0) == "an updating ticket passed its deadline: the rollout halts"
    group, _ = run(group, Tick(), now=161.0)
    assert states(group)["b"] == "failed" and states(group)["c"] == "updating"
    assert group.rollout("r1").held_by == 2  # type: ignore[union-attr]


def test_a_newer_rollout_waits_for_the_batch_and_supersedes_the_rest():
    group, _ = run(Group("g"), ready(("3",)), TicketTaken("r1", "b"))
    group, _ = run(group, UpdateReported("r1", 1, "a", ok=True))  # b updates; c, d, e are notified
    newer = RolloutReady(Rollout(id="r2", group="g", release="s2", canary="a", update_timeout=60))
    group, actions = run(group, newer, TicketTaken("r1", "c"))
    assert not [a for a in actions if isinstance(a, Dispatch)]  # c does not join the batch of a superseded rollout
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True))
    assert group.rollout("r1") is None  # superseded, out of the line
    assert actions == [Dispatch("a", "r2", 1)]


def test_the_partial_read_holds_a_whole_batch_the_next_and_the_first_after_it():
    group, _ = published(("3",))
    rollout = group.rollout("r1")
    assert rollout is not None and window(rollout) == 5
    assert [t.number for t in open_window(rollout)] == [2, 3, 4, 5]  # (the group's five: all of its open tickets)
    view = partial_view(group, Focus())
    assert [t.number for t in view.rollout("r1").tickets] == [2, 3, 4, 5]  # type: ignore[union-attr]


def test_a_rollout_without_a_canary_starts_with_its_first_batch():
    group, actions = run(Group("g"), ready(("2",), canary=None))
    group, actions = run(group, *(TicketTaken("r1", m) for m in FIVE))
    assert actions == [Dispatch("a", "r1", 1), Dispatch("b", "r1", 2)]


def test_the_members_whose_turn_comes_next_are_told_once_as_their_turn_nears():
    # One at a time: b's ticket is next while the canary updates; when b starts, c is next.
    group, _ = run(Group("g"), ready(("1",)))
    taken, _ = run(group, TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    assert newly_next(group, taken) == ("b",)
    assert newly_next(taken, run(taken, TicketTaken("r1", "d"))[0]) == ()  # d is not next: nothing new
    started, _ = run(taken, UpdateReported("r1", 1, "a", ok=True))
    assert newly_next(taken, started) == ("c",)
    # Batches of two: the whole next batch, once.
    group, _ = run(Group("g"), ready(("2",)), TicketTaken("r1", "b"), TicketTaken("r1", "c"),
                   TicketTaken("r1", "d"), TicketTaken("r1", "e"))
    first_batch, _ = run(group, UpdateReported("r1", 1, "a", ok=True))
    assert newly_next(group, first_batch) == ("d", "e")
    # A halted rollout starts nothing more: nobody is told.
    halted, _ = run(started, UpdateReported("r1", 2, "b", ok=False, error="health check failed"))
    assert newly_next(started, halted) == ()
