"""A build's claim holds its commit while its builder renews it, and frees it soon after the builder dies,
against moto's server over HTTP. (The whole path, a builder killed mid-build and a member building again,
is in ``test_rollout_cluster``.)"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from ledgerkit import bootstrapped_moto

from skynet_tasks import names
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.states import ReleaseState

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
