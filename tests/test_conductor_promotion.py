"""Manual promotion and maintenance windows in the conductor's decisions. Pure: no AWS."""

from __future__ import annotations

import functools

import decidekit
import pytest

from skynet_tasks.conductor import (
    Dispatch,
    Group,
    Notify,
    OperatorAction,
    Rollout,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
    attention,
    decide,
)
from skynet_tasks.conductor.promotion import refusal
from skynet_tasks.events import BadEvent, from_message, to_message
from skynet_tasks.policy_windows import parse_windows
from skynet_tasks.states import RolloutState

pytestmark = pytest.mark.timeout(10)

MEMBERS = ("a", "b", "c")
MONDAY_NOON = 1_796_644_800.0  # 2026-12-07 12:00:00 UTC, a Monday
WINDOW = parse_windows([{"days": "mon", "hours": "13:00-14:00"}])  # opens an hour after MONDAY_NOON


def ready(**policy: object) -> RolloutReady:
    return RolloutReady(Rollout(id="r1", group="g", release="s1", canary="a", update_timeout=60, **policy))  # type: ignore[arg-type]


run = functools.partial(decidekit.run, now=MONDAY_NOON)  # events decided in turn, on a Monday at noon


def rollout(group: Group) -> Rollout:
    found = group.rollout("r1")
    assert found is not None
    return found


def waiting_after_canary(**policy: object) -> Group:
    """A manual rollout whose canary a succeeded at MONDAY_NOON while b and c took their tickets."""
    group, _ = run(Group("g"), ready(promotion="manual", **policy), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True))
    assert actions == []
    return group


# ---- manual promotion ----------------------------------------------------------------------------------------

def test_a_manual_rollout_waits_after_its_canary_visibly_and_publishes_nothing():
    group = waiting_after_canary()
    waiting = rollout(group)
    assert waiting.state is RolloutState.RUNNING and not waiting.published and group.desired_release is None
    assert waiting.reason == "waiting for promotion: `skynet rollout promote r1` publishes it"
    assert {t.instance: str(t.state) for t in waiting.tickets} == {"a": "done", "b": "waiting", "c": "waiting"}
    # Time and ticks change nothing without a promote_timeout.
    group, actions = run(group, Tick(), now=MONDAY_NOON + 86400)
    assert actions == [] and rollout(group).reason == waiting.reason
    assert attention(group, MONDAY_NOON + 86400) is None


def test_promote_publishes_and_the_rest_roll_out_in_the_same_step():
    group, actions = run(waiting_after_canary(), OperatorAction("r1", "promote", "cli:ops"))
    promoted = rollout(group)
    assert promoted.published and promoted.reason == "promoted by cli:ops" and group.desired_release == "s1"
    assert actions == [Dispatch("b", "r1", 2)]
    # A duplicate promote changes nothing.
    again, actions = run(group, OperatorAction("r1", "promote", "cli:ops"))
    assert actions == [] and again == group


def test_a_member_that_missed_its_notification_is_told_at_promotion():
    group, _ = run(Group("g"), ready(promotion="manual"), TicketTaken("r1", "b"))
    group, _ = run(group, UpdateReported("r1", 1, "a", ok=True))
    group, actions = run(group, OperatorAction("r1", "promote", "ops"), now=MONDAY_NOON + 3600)  # an hour later
    assert actions == [Notify(("c",), "r1", again=True), Dispatch("b", "r1", 2)]  # c was told at the start


def test_promote_before_the_canary_succeeded_or_of_an_auto_rollout_changes_nothing():
    group, _ = run(Group("g"), ready(promotion="manual"), TicketTaken("r1", "b"))
    unchanged, actions = run(group, OperatorAction("r1", "promote", "ops"))
    assert actions == [] and unchanged == group
    assert refusal(rollout(group), "r1") == "rollout r1 is not waiting for promotion: its canary has not " \
                                           "succeeded (running)"
    auto, _ = run(Group("g"), ready())
    assert refusal(rollout(auto), "r1") == "rollout r1 is not waiting for promotion (its canary publishes it: " \
                                          "canary: auto)"
    published, _ = run(waiting_after_canary(), OperatorAction("r1", "promote", "ops"))
    assert refusal(rollout(published), "r1") == "rollout r1 is published already: nothing to promote"
    assert refusal(None, "r9") == "rollout r9 is not in its group's line: nothing to promote"
    assert refusal(rollout(waiting_after_canary()), "r1") is None


def test_a_failed_canary_halts_a_manual_rollout_and_its_retry_waits_for_promotion_again():
    group, _ = run(Group("g"), ready(promotion="manual"), TicketTaken("r1", "b"))
    group, _ = run(group, UpdateReported("r1", 1, "a", ok=False, error="boom"))
    assert rollout(group).state is RolloutState.HALTED
    group, actions = run(group, OperatorAction("r1", "retry"), TicketTaken("r1", "b"))
    assert actions == [Dispatch("a", "r1", 1)]
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True), now=MONDAY_NOON + 5)
    assert actions == [] and rollout(group).promotable_at == MONDAY_NOON + 5


def test_a_paused_rollout_waiting_for_promotion_is_published_and_stays_paused():
    group, _ = run(waiting_after_canary(), OperatorAction("r1", "pause", "ops"), OperatorAction("r1", "promote", "ops"))
    assert rollout(group).published and rollout(group).state is RolloutState.PAUSED
    group, actions = run(group, OperatorAction("r1", "resume", "ops"))
    assert actions == [Dispatch("b", "r1", 2)]


def test_nobody_promoting_within_the_timeout_aborts_it_at_the_next_tick():
    group = waiting_after_canary(promote_timeout=600.0)
    assert rollout(group).reason == ("waiting for promotion: `skynet rollout promote r1` publishes it; "
                                     "aborted if not promoted by 2026-12-07 12:10:00 UTC")
    group, actions = run(group, Tick(), now=MONDAY_NOON + 599)
    assert actions == [] and rollout(group).state is RolloutState.RUNNING
    assert attention(group, MONDAY_NOON + 599) is None
    assert attention(group, MONDAY_NOON + 600) == \
        "a rollout waited for promotion past its promote_timeout: it is aborted"
    group, actions = run(group, Tick(), now=MONDAY_NOON + 600)
    decision = decide(waiting_after_canary(promote_timeout=600.0), Tick(), MONDAY_NOON + 600, MEMBERS)
    aborted = decision.touched[0]
    assert actions == [] and group.rollout("r1") is None and group.desired_release is None
    assert aborted.state is RolloutState.ABORTED and {t.instance: str(t.state) for t in aborted.tickets} == {
        "a": "done", "b": "cancelled", "c": "cancelled"}
    assert aborted.reason == "aborted: not promoted within 600 s of its canary's success (promote_timeout)"


def test_a_newer_push_supersedes_a_rollout_waiting_for_promotion():
    group = waiting_after_canary()
    newer = RolloutReady(Rollout(id="r2", group="g", release="s2", canary="a", update_timeout=60))
    group, actions = run(group, newer)
    assert group.rollout("r1") is None and actions[-1] == Dispatch("a", "r2", 1)


# ---- maintenance windows -------------------------------------------------------------------------------------

def test_a_rollout_pushed_outside_its_window_waits_visibly_and_starts_when_it_opens():
    group, actions = run(Group("g"), ready(windows=WINDOW), TicketTaken("r1", "b"))
    assert actions == [Notify(("b", "c"), "r1")]  # the members line up, the canary does not start
    assert rollout(group).reason == "waiting for its window, opens at 2026-12-07 13:00:00 UTC"
    assert attention(group, MONDAY_NOON + 3599) is None  # no tick needed while it stays closed
    group, actions = run(group, Tick(), now=MONDAY_NOON + 3599)
    assert actions == []

    assert attention(group, MONDAY_NOON + 3600) == "a rollout's maintenance window opened: its tickets start"
    group, actions = run(group, Tick(), now=MONDAY_NOON + 3600)
    assert actions == [Dispatch("a", "r1", 1)] and rollout(group).reason == "its window opened"
    assert attention(group, MONDAY_NOON + 3600) is None


def test_a_window_closing_lets_the_update_in_flight_finish_and_starts_nothing_new():
    group, _ = run(Group("g"), ready(windows=WINDOW), TicketTaken("r1", "b"), TicketTaken("r1", "c"),
                   now=MONDAY_NOON + 3600)
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True), now=MONDAY_NOON + 3700)
    assert actions == [Dispatch("b", "r1", 2)]
    group, actions = run(group, UpdateReported("r1", 2, "b", ok=True), now=MONDAY_NOON + 7200)  # closed at 14:00
    assert actions == [] and {t.instance: str(t.state) for t in rollout(group).tickets}["c"] == "waiting"
    assert rollout(group).reason == "waiting for its window, opens at 2026-12-14 13:00:00 UTC"


def test_deploy_now_ignores_the_windows():
    _, actions = run(Group("g"), ready(windows=WINDOW, ignore_windows=True))
    assert Dispatch("a", "r1", 1) in actions


def test_promotion_waits_for_the_window_too():
    group = waiting_after_canary(windows=parse_windows([{"days": "mon", "hours": "12:00-12:30"}]))
    group, actions = run(group, OperatorAction("r1", "promote", "ops"), now=MONDAY_NOON + 3600)
    assert rollout(group).published and actions == []
    assert rollout(group).reason == "waiting for its window, opens at 2026-12-14 12:00:00 UTC"


# ---- on the wire ---------------------------------------------------------------------------------------------

def test_the_rollout_event_carries_the_policy_and_a_bad_one_is_refused():
    event = ready(promotion="manual", promote_timeout=90.0, windows=WINDOW, ignore_windows=True)
    body, _ = to_message(event)
    assert from_message(body) == event
    older = {k: v for k, v in body.items() if k not in ("promotion", "promote_timeout", "windows", "ignore_windows")}
    old = from_message(older).rollout  # type: ignore[union-attr]
    assert (old.promotion, old.promote_timeout, old.windows, old.ignore_windows) == ("auto", None, (), False)
    for field, value in (("promotion", "later"), ("promote_timeout", -1), ("windows", ["mon 25:00:00-26:00:00 UTC"]),
                         ("ignore_windows", "yes")):
        with pytest.raises(BadEvent, match=field):
            from_message({**body, field: value})
    promote, _ = to_message(OperatorAction("r1", "promote", "dashboard:ops"))
    assert from_message(promote) == OperatorAction("r1", "promote", "dashboard:ops")
