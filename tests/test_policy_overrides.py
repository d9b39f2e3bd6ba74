"""A rollout's policy overrides (skynet_tasks/policy_overrides.py): parsed with skynet.yml's rules and messages,
kept in the rollout's record, taken by the publication instead of skynet.yml's, and what the conductor then
does with them (a manual canary from an override waits for promotion; a window from an override holds the first
dispatch). Pure: the record is a dict, the conductor's decision a function; no AWS."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from skynet_tasks.conductor import Dispatch, Group, Notify, Rollout, RolloutReady, TicketTaken, UpdateReported, decide
from skynet_tasks.events import from_message
from skynet_tasks.ledger import Release
from skynet_tasks.policy import PolicyError, RolloutPolicy
from skynet_tasks.policy_overrides import RolloutOverrides, parse_overrides
from skynet_tasks.states import ReleaseState, RolloutState
from skynet_tasks.tasks.publish import publish_release

pytestmark = pytest.mark.timeout(10)

MONDAY_NOON = 1_796_644_800.0  # 2026-12-07 12:00:00 UTC, a Monday
MEMBERS = ("a", "b", "c")


def test_every_key_of_the_policy_is_overridable_and_normalised_as_in_skynet_yml():
    overrides = parse_overrides({"max_parallel": [1, "50%"], "min_healthy_time": "10s", "progress_deadline": "10m",
                                 "on_failure": "revert", "canary": "manual", "promote_timeout": "1h",
                                 "windows": ["mon-fri 09:00-17:00 Europe/Paris",
                                             {"days": "sat", "hours": "22:00-02:00"}]})

    assert overrides == RolloutOverrides(
        max_parallel=("1", "50%"), min_healthy_time=10.0, progress_deadline=600.0, on_failure="revert",
        canary="manual", promote_timeout=3600.0,
        windows=("mon,tue,wed,thu,fri 09:00:00-17:00:00 Europe/Paris", "sat 22:00:00-02:00:00 UTC"))


def test_absent_and_none_keys_keep_skynet_ymls_and_0_turns_its_progress_deadline_off():
    assert parse_overrides({}) == parse_overrides({"canary": None, "windows": None}) == RolloutOverrides()
    assert parse_overrides({"progress_deadline": 0}).progress_deadline == 0.0
    yml = RolloutPolicy(progress_deadline=300.0, canary="manual", windows=("mon 09:00:00-10:00:00 UTC",))
    assert parse_overrides({"progress_deadline": 0}).over(yml) == RolloutPolicy(
        canary="manual", windows=("mon 09:00:00-10:00:00 UTC",))
    assert parse_overrides({"canary": "auto", "windows": ["* 00:00-24:00"]}).over(yml) == RolloutPolicy(
        progress_deadline=300.0, windows=("mon,tue,wed,thu,fri,sat,sun 00:00:00-24:00:00 UTC",))


@pytest.mark.parametrize(("given", "message"), [
    ({"max_parallel": 0}, "rollout.max_parallel: 0 is not a batch size: a count is at least 1"),
    ({"min_healthy_time": "soon"}, "rollout.min_healthy_time: 'soon' is not a duration"),
    ({"progress_deadline": "30d"}, "rollout.progress_deadline: '30d' is longer than 7 days"),
    ({"on_failure": "rollback"}, "rollout.on_failure: 'rollback' is not a failure policy: expected one of halt"),
    ({"canary": "later"}, "rollout.canary: 'later' is not a canary mode: expected auto or manual"),
    ({"promote_timeout": "0s"}, "rollout.promote_timeout: '0s' is out of range: at least 1 s and at most 30 days"),
    ({"windows": []}, "rollout.windows: an empty list would never open"),
    ({"windows": ["mon-fri"]}, "rollout.windows[0]: 'mon-fri' is not a window: expected days, hours and an optional"),
    ({"windows": ["mon-fri 09:00-17:00 Mars/Olympus"]}, "rollout.windows[0].tz: unknown time zone 'Mars/Olympus'"),
    ({"windows": ["moon 09:00-17:00"]}, "rollout.windows[0].days: unknown day 'moon'"),
    ({"ignore_windows": True}, "rollout: unknown key(s) ignore_windows (known: max_parallel, min_healthy_time"),
    ("manual", "rollout: expected a mapping with the key(s) max_parallel"),
])
def test_a_bad_override_names_the_key_and_the_rule(given: Any, message: str):
    with pytest.raises(PolicyError) as refused:
        parse_overrides(given)

    assert str(refused.value).startswith(message), refused.value


def test_a_command_names_its_flag_instead_of_the_key():
    with pytest.raises(PolicyError, match=r"^--window\[1\]\.hours: '09:00-09:00' is zero hours long"):
        parse_overrides({"windows": ["mon 09:00-10:00", "tue 09:00-09:00"]}, "deploy", {"windows": "--window"})


def test_the_record_keeps_the_canary_mode_as_promotion_and_reads_back_what_it_kept():
    overrides = parse_overrides({"canary": "manual", "promote_timeout": 90, "windows": ["sat,sun 00:00-24:00"],
                                 "max_parallel": "25%"})

    record = overrides.record()

    assert record == {"max_parallel": ["25%"], "promotion": "manual", "promote_timeout": 90.0,
                      "windows": ["sat,sun 00:00:00-24:00:00 UTC"]}
    # The record's own ``canary`` is the canary instance's id, never read as a mode.
    assert RolloutOverrides.from_record({**record, "canary": "api-1", "state": "building"}) == overrides
    with pytest.raises(PolicyError, match="rollout.canary: 'sometimes' is not a canary mode"):
        RolloutOverrides.from_record({"promotion": "sometimes"})


class _Record:
    """A rollout's record and what the builder sends, in memory (the ledger's and messenger's part used here)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = {"state": RolloutState.BUILDING, **record}
        self.sent: list[dict[str, Any]] = []

    def rollout_item(self, rollout_id: str) -> dict[str, Any]:
        return self.record

    def annotate_rollout(self, rollout_id: str, attributes: dict[str, Any]) -> None:
        self.record.update(attributes)

    def fail_build(self, rollout_id: str, reason: str) -> None:
        self.record.update(state=RolloutState.BUILD_FAILED, reason=reason)

    def maintenance(self, group: str, body: dict[str, Any], dedup: str, lane: str | None = None) -> None:
        self.sent.append(body)


def published(overrides: RolloutOverrides, policy: dict[str, Any] | None = None,
              store: _Record | None = None) -> Rollout | None:
    """The rollout the builder announces for a release of skynet.yml ``policy``, requested with ``overrides``."""
    store = store or _Record(overrides.record())
    release = Release(group="g", sha="s" * 40, state=ReleaseState.BUILT, update_timeout=60.0,
                      rollout_policy=policy, started_at=time.time())
    ctx = SimpleNamespace(ledger=store, messenger=store,
                          settings=SimpleNamespace(require_instance=lambda: SimpleNamespace(instance_id="a")))
    publish_release(ctx, "r1", release, MONDAY_NOON)  # type: ignore[arg-type]
    if not store.sent:
        return None
    event = from_message(store.sent[0])
    assert isinstance(event, RolloutReady)
    return event.rollout


def run(group: Group, *events: object, now: float = MONDAY_NOON) -> tuple[Group, list[Any]]:
    actions: list[Any] = []
    for event in events:
        decision = decide(group, event, now, MEMBERS)  # type: ignore[arg-type]
        group, actions = decision.group, actions + list(decision.actions)
    return group, actions


def test_a_manual_canary_from_an_override_waits_for_promotion_over_skynet_ymls_auto():
    rollout = published(parse_overrides({"canary": "manual", "promote_timeout": "1h"}), {"canary": "auto"})
    assert rollout is not None and (rollout.promotion, rollout.promote_timeout) == ("manual", 3600.0)

    group, _ = run(Group("g"), RolloutReady(rollout), TicketTaken("r1", "b"), TicketTaken("r1", "c"))
    group, actions = run(group, UpdateReported("r1", 1, "a", ok=True))

    waiting = group.rollout("r1")
    assert actions == [] and waiting is not None and not waiting.published
    assert waiting.reason is not None and waiting.reason.startswith("waiting for promotion")


def test_a_window_from_an_override_holds_the_first_dispatch_until_it_opens():
    rollout = published(parse_overrides({"windows": ["mon 13:00-14:00"]}))  # opens an hour after MONDAY_NOON
    assert rollout is not None and rollout.windows == ("mon 13:00:00-14:00:00 UTC",)

    group, actions = run(Group("g"), RolloutReady(rollout), TicketTaken("r1", "b"))
    assert actions == [Notify(("b", "c"), "r1")]  # the members line up, the canary does not start
    group, actions = run(group, TicketTaken("r1", "c"), now=MONDAY_NOON + 3600)
    assert Dispatch("a", "r1", 1) in actions


def test_an_auto_canary_override_publishes_at_once_over_skynet_ymls_manual():
    rollout = published(parse_overrides({"canary": "auto"}), {"canary": "manual", "windows": ["* 00:00-24:00"]})
    assert rollout is not None and rollout.promotion == "auto"
    assert rollout.windows == ("mon,tue,wed,thu,fri,sat,sun 00:00:00-24:00:00 UTC",)  # skynet.yml's kept


def test_a_record_changed_by_hand_fails_the_rollout_and_nothing_is_announced():
    store = _Record({"windows": ["mon 25:00-26:00"]})

    assert published(RolloutOverrides(), store=store) is None
    assert store.record["state"] == RolloutState.BUILD_FAILED
    assert store.record["reason"].startswith(
        "invalid rollout policy: rollout.windows[0].hours: '25:00' is out of range")
