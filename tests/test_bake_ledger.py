"""The bake time and progress deadline on their way: the deploy command's overrides on the rollout's record,
the builder's announcement (skynet.yml's values or the overrides, checked against the release), and the
conductor's writes and partial reads of the progress clock. The ledger is a moto server."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from ledgerkit import bootstrapped_moto

from skynet_tasks import names
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.deploys import request_build
from skynet_tasks.events import from_message
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.ledger.reads import Focus, partial_view
from skynet_tasks.policy_overrides import RolloutOverrides
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState
from skynet_tasks.step import decide_and_write_until_settled
from skynet_tasks.tasks.publish import publish_release

pytestmark = pytest.mark.timeout(60)

GROUP, MEMBERS = "local-api", ("a", "b", "c")


@pytest.fixture(scope="module")
def ledger():
    with bootstrapped_moto([GROUP]) as (_, aws):
        yield Ledger(aws.dynamodb, names.state_table("local"))


class _Messages:
    """Stands in for the queues: what the builder would send, kept for the test to read."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def build(self, group: str, request: dict[str, Any]) -> None:
        self.sent.append(request)

    def maintenance(self, group: str, body: dict[str, Any], dedup: str, lane: str | None = None) -> None:
        self.sent.append(body)


def announced(ledger: Ledger, sha: str, bake: float | None, deadline: float | None, **overrides: float) -> Any:
    """What the builder announces for a release of skynet.yml's ``bake`` and ``deadline``, with ``overrides``."""
    messages = _Messages()
    started = request_build(ledger, messages, GROUP, "file:///nowhere", "main", sha, "cli",  # type: ignore[arg-type]
                            overrides=RolloutOverrides(**overrides))  # type: ignore[arg-type]
    release = Release(group=GROUP, sha=sha, state=ReleaseState.BUILT, update_timeout=60.0,
                      rollout_policy={"min_healthy_time": bake, "progress_deadline": deadline})
    ctx = SimpleNamespace(ledger=ledger, messenger=messages,
                          settings=SimpleNamespace(require_instance=lambda: SimpleNamespace(instance_id="a")))
    publish_release(ctx, started.rollout_id, release, time.time())  # type: ignore[arg-type]
    bodies = [m for m in messages.sent if m.get("type") == "rollout_ready"]
    return started.rollout_id, (from_message(bodies[0]).rollout if bodies else None)  # type: ignore[union-attr]


def test_the_builder_announces_skynet_ymls_bake_and_deadline(ledger):
    _, rollout = announced(ledger, "1" * 40, 5.0, 300.0)
    assert (rollout.min_healthy_time, rollout.progress_deadline) == (5.0, 300.0)


def test_a_deploys_overrides_win_and_0_turns_them_off(ledger):
    rollout_id, rollout = announced(ledger, "2" * 40, 5.0, 300.0, min_healthy_time=20.0, progress_deadline=900.0)
    assert (ledger.rollout_item(rollout_id) or {})["min_healthy_time"] == 20
    assert (rollout.min_healthy_time, rollout.progress_deadline) == (20.0, 900.0)
    _, rollout = announced(ledger, "3" * 40, 5.0, 300.0, min_healthy_time=0.0, progress_deadline=0.0)
    assert (rollout.min_healthy_time, rollout.progress_deadline) == (0.0, None)


def test_an_override_that_does_not_fit_the_release_fails_the_rollout_naming_the_rule(ledger):
    rollout_id, rollout = announced(ledger, "4" * 40, None, None, min_healthy_time=120.0)
    assert rollout is None  # nothing announced, nothing rolls out
    record = ledger.rollout_item(rollout_id) or {}
    assert record["state"] == RolloutState.BUILD_FAILED
    assert record["reason"] == ("invalid rollout policy: rollout.min_healthy_time: 120s is longer than the update "
                                "timeout (60s): the bake is at most update_timeout")


def test_the_ledger_keeps_the_bake_and_the_progress_clock_and_a_partial_read_sees_the_clock(ledger):
    ledger.create_rollout("r-clock", GROUP, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-clock", group=GROUP, release="s1", canary="a", update_timeout=60,
                                 min_healthy_time=10.0, progress_deadline=200.0))
    now = time.time()
    for event in (ready, TicketTaken("r-clock", "b"), TicketTaken("r-clock", "c")):
        decide_and_write_until_settled(ledger, GROUP, event, MEMBERS, now=now)
    stored = ledger.load_rollout("r-clock")
    assert stored is not None and (stored.min_healthy_time, stored.progress_deadline) == (10.0, 200.0)
    canary = stored.ticket(1)
    assert canary is not None and canary.deadline == pytest.approx(now + 70.0)  # update timeout plus bake
    assert stored.progress_at == pytest.approx(now)
    # The instance reads its bake from the record (tasks.update.bake_time).
    assert (ledger.rollout_item("r-clock") or {})["min_healthy_time"] == 10

    decide_and_write_until_settled(ledger, GROUP, UpdateReported("r-clock", 1, "a", ok=True), MEMBERS, now=now + 30)
    assert (ledger.load_rollout("r-clock") or stored).progress_at == pytest.approx(now + 30)
    whole = ledger.load_group(GROUP)
    assert ledger.load_group(GROUP, Focus()) == partial_view(whole, Focus())
    assert (partial_view(whole, Focus()).rollout("r-clock") or stored).progress_at == pytest.approx(now + 30)
