"""A demo rollout that never ends stops the demo, saying what its build is doing and where the logs are,
against moto's server over HTTP. (The demo itself, end to end, is ``test_demo``.)"""

from __future__ import annotations

import time

import pytest
from statetablekit import state_table_ledger

from skynet_tasks.demo import Demo, DemoError
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.states import ReleaseState, RolloutKind

pytestmark = pytest.mark.timeout(60)

GROUP = "local-api"


@pytest.fixture(scope="module")
def ledger():
    with state_table_ledger([GROUP]) as on_moto:
        yield on_moto


def stuck_rollout(ledger: Ledger, rollout_id: str, sha: str) -> None:
    assert ledger.create_rollout(rollout_id, GROUP, sha, RolloutKind.CODE, {"requested_at": time.time()})


def test_a_build_nobody_claimed_stops_the_demo_saying_so_and_where_the_logs_are(ledger, tmp_path):
    stuck_rollout(ledger, "r-unclaimed", "a" * 40)
    said: list[str] = []

    with pytest.raises(DemoError) as stopped:
        Demo(tmp_path, said.append).follow(ledger, "r-unclaimed", timeout=0.5)

    assert str(stopped.value) == (
        "rollout r-unclaimed is still building after 0 s (no instance has claimed its build); see the "
        f"instances' logs: {tmp_path.resolve()}/instances/*/srv-upper/skynet/logs/worker.log")
    assert said == ["  rollout r-unclaimed: building"]


def test_a_build_whose_builder_stopped_renewing_is_named_with_its_lapsed_claim(ledger, tmp_path):
    stuck_rollout(ledger, "r-lapsed", "b" * 40)
    assert ledger.claim_build(Release(group=GROUP, sha="b" * 40, state=ReleaseState.BUILDING, builder="i-builder",
                                      started_at=time.time() - 100), lease=0.1) is not None
    ledger.annotate_rollout("r-lapsed", {"nudged_at": time.time() - 30})
    time.sleep(0.2)

    with pytest.raises(DemoError, match=r"^rollout r-lapsed is still building after 0 s \(its build is building by "
                                        r"i-builder, started 10\d s ago, its claim lapsed \d s ago; its build was "
                                        r"re-sent 3\d s ago\); see the instances' logs: "):
        Demo(tmp_path, print, stack=False).follow(ledger, "r-lapsed", timeout=0.1)
