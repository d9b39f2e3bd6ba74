"""What one conductor step reads and when a line needs the heartbeat's tick, as data (no AWS, no workers): a
step decided on a partial read of the line (``skynet_tasks.ledger.reads``) decides as on the whole line, or says
why it needs every ticket (halting, reminding, completion); ``conductor.attention`` asks for a tick exactly when
the tick has something to do.
"""

from __future__ import annotations

from dataclasses import replace

from decidekit import MEMBERS, ready, run, states

from skynet_tasks.conductor import (
    REDISPATCH_AFTER,
    UPDATE_HARD_LIMIT,
    Dispatch,
    Group,
    Notify,
    OperatorAction,
    Tick,
    TicketTaken,
    UpdateReported,
    attention,
    decide,
)
from skynet_tasks.conductor.draft import REMIND_AFTER
from skynet_tasks.ledger.reads import focus_of, needs_every_ticket, partial_view
from skynet_tasks.states import RolloutState


def test_a_partial_read_decides_like_the_whole_line_or_is_read_whole():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True),
                   TicketTaken("r1", "b"), TicketTaken("r1", "c"), TicketTaken("r1", "d"), TicketTaken("r1", "e"),
                   live=(*MEMBERS, "d", "e"))
    report = UpdateReported("r1", 2, "b", ok=True)
    view = partial_view(group, focus_of(report))
    assert [t.number for t in view.line[0].tickets] == [2, 3, 4]  # updating, next, after it; not the canary's

    quick, whole = decide(view, report, 100.0, MEMBERS), decide(group, report, 100.0, MEMBERS)
    assert needs_every_ticket(view, quick) is None
    assert quick.actions == whole.actions == (Dispatch("c", "r1", 3),)

    failed = UpdateReported("r1", 2, "b", ok=False, error="health check failed")
    view = partial_view(group, focus_of(failed))
    halted = decide(view, failed, 100.0, MEMBERS)
    # The partial view does not hold e's waiting ticket, which halting cancels: the step is read whole.
    assert states(halted.group) == {"b": "failed", "c": "cancelled", "d": "cancelled"}
    assert needs_every_ticket(view, halted) == "halting cancels every waiting ticket"
    assert states(decide(group, failed, 100.0, MEMBERS).group)["e"] == "cancelled"


def test_the_canarys_success_publishes_on_a_partial_view_unless_it_reminds_the_members():
    live = (*MEMBERS, "d", "e")
    group, _ = run(Group("g"), ready(), TicketTaken("r1", "b"), TicketTaken("r1", "c"), TicketTaken("r1", "d"),
                   TicketTaken("r1", "e"), live=live)
    report = UpdateReported("r1", 1, "a", ok=True)
    view = partial_view(group, focus_of(report))
    assert [t.number for t in view.line[0].tickets] == [1, 2, 3]  # the canary's, the next, the one after it

    # Moments after the rollout started: published on the view, as on the whole line, expecting every live member
    quick, whole = decide(view, report, 101.0, live), decide(group, report, 101.0, live)
    assert needs_every_ticket(view, quick) is None
    assert quick.actions == whole.actions == (Dispatch("b", "r1", 2),)
    published = quick.group.rollout("r1")
    assert published is not None and published.published and published.expected == ("a", "b", "c", "d", "e")

    # After a long canary (a manual promotion), publication reminds who holds no ticket: that needs them all
    late = 100.0 + REMIND_AFTER + 1
    reminding = decide(view, report, late, (*live, "f"))
    assert needs_every_ticket(view, reminding) == "publication reminds the members without a ticket to take one"
    assert Notify(("f",), "r1", again=True) in decide(group, report, late, (*live, "f")).actions


def test_events_that_change_every_ticket_are_read_whole_at_once():
    assert focus_of(UpdateReported("r1", 1, "a", ok=False)) is None  # the canary's failure halts
    assert all(focus_of(OperatorAction("r1", action)) is None for action in ("resume", "retry", "abort"))
    assert focus_of(OperatorAction("r1", "pause")) is not None


def test_a_line_needs_a_tick_exactly_when_the_tick_has_something_to_do():
    # The deadline rule is one table (conductor.attention): the heartbeat sends a tick when it says so.
    group, _ = run(Group("g"), ready(timeout=60), TicketTaken("r1", "b"), now=100.0)
    acknowledged = replace(group.rollout("r1"), tickets=tuple(  # type: ignore[arg-type]
        replace(t, acknowledged_at=101.0) if t.number == 1 else t for t in group.rollout("r1").tickets))  # type: ignore[union-attr]
    on_time = replace(group, line=(acknowledged,))
    assert attention(on_time, 150.0) is None and not decide(on_time, Tick(), 150.0, MEMBERS).changed

    assert attention(on_time, 161.0) == "an updating ticket passed its deadline: the rollout halts"
    assert decide(on_time, Tick(), 161.0, MEMBERS).group.rollout("r1").state is RolloutState.HALTED  # type: ignore[union-attr]

    assert attention(group, 100.0 + REDISPATCH_AFTER + 1) == \
        "an updating ticket's dispatch was not acknowledged: it is sent again"
    assert decide(group, Tick(), 100.0 + REDISPATCH_AFTER + 1, MEMBERS).actions == (Dispatch("a", "r1", 1),)

    overdue, _ = run(on_time, Tick(), now=161.0)  # a's ticket failed by its deadline: the line is held
    assert attention(overdue, 162.0) is None
    released = 60 + 100.0 + UPDATE_HARD_LIMIT + 1
    assert attention(overdue, released) == "a hold passed: the line may go on"
    assert decide(overdue, Tick(), released, MEMBERS).changed


def test_a_published_rollout_with_nobody_updating_needs_a_tick_to_complete_once_a_member_left():
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"),
                   UpdateReported("r1", 2, "b", ok=True))
    assert attention(group, 100.0) == "a published rollout has nobody updating: it may be complete"
    assert not decide(group, Tick(), 100.0, MEMBERS).changed  # c has not taken its ticket yet
    completed = decide(group, Tick(), 100.0, ("a", "b")).group  # c left the group
    assert completed.line == () and attention(completed, 100.0) is None


def test_completion_is_decided_on_every_ticket_as_a_partial_view_cannot_see_who_is_missing():
    # c was live at publication but its ticket request has not arrived: the rollout is not complete.
    group, _ = run(Group("g"), ready(), UpdateReported("r1", 1, "a", ok=True), TicketTaken("r1", "b"),
                   UpdateReported("r1", 2, "b", ok=True))
    view = partial_view(group, focus_of(Tick()))
    quick = decide(view, Tick(), 100.0, MEMBERS)

    assert quick.group.line == ()  # the partial view holds no expected members: it looks complete
    assert needs_every_ticket(view, quick) == "completion needs every expected member done"
    assert not decide(group, Tick(), 100.0, MEMBERS).changed
