"""A build's claim holds its commit while its builder renews it, and frees it soon after the builder dies; a
build nobody runs is sent again by a member's look for stalled builds; against moto's server over HTTP.
(The whole path, a builder killed mid-build and a member building again, is in ``test_rollout_cluster``.)"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ledgerkit import bootstrapped_moto

from skynet_tasks import names
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.membership import NUDGE_FOR, nudge_stalled_builds
from skynet_tasks.states import ReleaseState, RolloutKind

pytestmark = pytest.mark.timeout(60)

GROUP = "local-api"


@pytest.fixture(scope="module")
def ledger():
    with bootstrapped_moto([GROUP]) as (_, aws):
        yield Ledger(aws.dynamodb, names.state_table("local"))


def claim(ledger: Ledger, sha: str, builder: str, lease: float) -> Release | None:
    return ledger.claim_build(Release(group=GROUP, sha=sha, state=ReleaseState.BUILDING, builder=builder,
                                      started_at=time.time()), lease=lease)


def test_a_renewed_claim_holds_the_commit_past_its_first_lease(ledger):
    assert claim(ledger, "a" * 40, "api-1", lease=1.0) is not None

    for _ in range(3):  # renewed for three leases' time
        time.sleep(0.5)
        assert ledger.renew_build(GROUP, "a" * 40, "api-1", lease=1.0)

    assert claim(ledger, "a" * 40, "api-2", lease=1.0) is None
    assert not ledger.renew_build(GROUP, "a" * 40, "api-2", lease=1.0)  # nobody renews another's claim
    assert ledger.release(GROUP, "a" * 40).builder == "api-1"


def test_a_claim_nobody_renews_lapses_and_its_dead_builder_can_neither_renew_nor_finish_it(ledger):
    assert claim(ledger, "b" * 40, "api-1", lease=0.5) is not None
    time.sleep(1.0)  # api-1 died: no renewal

    assert claim(ledger, "b" * 40, "api-2", lease=30.0) is not None

    assert not ledger.renew_build(GROUP, "b" * 40, "api-1", lease=30.0)
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ledger.finish_build(GROUP, "b" * 40, "api-1", ReleaseState.BUILT, {"artifact_key": "stale"})
    taken = ledger.release(GROUP, "b" * 40)
    assert taken.builder == "api-2" and taken.state is ReleaseState.BUILDING and taken.artifact_key is None


def test_a_finished_build_is_not_renewed_back_into_building(ledger):
    assert claim(ledger, "c" * 40, "api-1", lease=30.0) is not None
    ledger.finish_build(GROUP, "c" * 40, "api-1", ReleaseState.BUILT, {"artifact_key": "k"})

    # a renewal from the build's last heartbeat, after it finished
    assert not ledger.renew_build(GROUP, "c" * 40, "api-1", lease=30.0)
    assert ledger.release(GROUP, "c" * 40).state is ReleaseState.BUILT


class SentBuilds:
    """Stands in for the Messenger: the build requests a member sent again."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def build(self, group: str, request: dict[str, Any], attempt: str = "first") -> None:
        self.sent.append((group, request["rollout_id"]))


def test_a_build_nobody_runs_is_sent_again_after_the_nudge_delay_for_an_hour_at_most(ledger):
    # Given a build requested now that no instance claimed (its message was lost)
    requested = time.time()
    assert ledger.create_rollout("r-lost", GROUP, "d" * 40, RolloutKind.CODE,
                                 {"requested_at": requested, "repo": "repo", "branch": "main"})
    sent = SentBuilds()
    member = SimpleNamespace(ledger=ledger, messenger=sent, settings=SimpleNamespace(
        group=GROUP, repo="repo", branch="main", build_nudge_after=45.0))

    # Then a member's look sends it again once the delay has passed, not before
    assert nudge_stalled_builds(member, now=requested + 10) == []
    assert nudge_stalled_builds(member, now=requested + 50) == ["r-lost"]
    assert sent.sent == [(GROUP, "r-lost")]
    # and not again within the delay of that nudge
    assert nudge_stalled_builds(member, now=requested + 60) == []
    # and no more once its request is an hour old: the look reads only that hour's rollouts
    assert nudge_stalled_builds(member, now=requested + NUDGE_FOR + 60) == []
    assert sent.sent == [(GROUP, "r-lost")]
