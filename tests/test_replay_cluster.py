"""Replayed pushes on a local cluster, through the receiver a user runs (``skynet webhook serve``).

GitHub signs only a push's body, so whoever captured one (the load balancer listens on plain
HTTP) can send it again with a fresh delivery id. Here the group runs B after A; A's push,
replayed, must not roll the group back, and B's push, replayed after the branch was forced
back to A, must not roll it forward again. The branch forced back to A is built, and says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import git
import pytest
from clusterkit import current_release, ledger, wait_for

from skynet_tasks import names
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import branch_tip, commit_files
from skynet_tasks.webhook.deliveries import push_id
from skynet_tasks.webhook.local import push_payload, send_webhook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

INSTANCES = ("api-1", "api-2")
GROUP = "local-api"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=len(INSTANCES), rp=0)
    yield cluster
    cluster.down()


def push(cluster: LocalCluster, payload: dict, delivery: str | None = None) -> tuple[int, dict]:
    info = cluster.require_info()
    assert info.webhook_url and info.webhook_secret_file
    return send_webhook(info.webhook_url, Path(info.webhook_secret_file).read_bytes().strip(), "push", payload,
                        delivery=delivery)


def finished(cluster: LocalCluster, rollout_id: str, timeout: float = 150) -> dict:
    states = ("completed", "halted", "build_failed")
    return wait_for(lambda: (r := ledger(cluster).rollout_item(rollout_id)) and r.get("state") in states and r,
                    timeout, f"rollout {rollout_id} to finish")


def pushed_and_rolled_out(cluster: LocalCluster, payload: dict) -> str:
    status, answer = push(cluster, payload)
    assert status == 202 and len(answer["builds"]) == 1, answer
    rollout_id = answer["builds"][0]["rollout_id"]
    assert finished(cluster, rollout_id)["state"] == "completed"
    assert all(current_release(cluster, i) == payload["after"] for i in INSTANCES)
    return rollout_id


def claim_expires(cluster: LocalCluster, payload: dict) -> None:
    """What DynamoDB's expiry does to a push's claim a week later."""
    pushed_at = payload["repository"]["pushed_at"]
    key = push_id(payload["repository"]["full_name"], payload["ref"], payload["before"], payload["after"], pushed_at)
    cluster.aws().dynamodb.delete_item(TableName=names.state_table("local"),
                                       Key={"pk": {"S": f"delivery#{key}"}, "sk": {"S": "delivery"}})


def test_replayed_pushes_roll_nothing_back_and_a_forced_push_back_is_built(cluster, tmp_path):
    info = cluster.require_info()
    work = tmp_path / "sample-app"
    # Given the group ran A, then B, each pushed through GitHub's webhook
    start = branch_tip(info.app_repo)
    a = commit_files(info.app_repo, work, {"VERSION": "release A\n"}, "Release A")
    push_a = push_payload("sample-app", "main", start, a, pushed_at=int(time.time()))
    pushed_and_rolled_out(cluster, push_a)
    b = commit_files(info.app_repo, work, {"VERSION": "release B\n"}, "Release B")
    push_b = push_payload("sample-app", "main", a, b, pushed_at=int(time.time()) + 1)
    pushed_and_rolled_out(cluster, push_b)
    rollouts = ledger(cluster).recent_rollouts(GROUP, 100)

    # When A's signed push is replayed with a fresh delivery id, at once and after its claim expired
    replayed = push(cluster, push_a, delivery="replay-1")
    claim_expires(cluster, push_a)
    replayed_later = push(cluster, push_a, delivery="replay-2")

    # Then both are accepted, say why, and start no rollout: the group stays on B
    assert replayed[0] == 202 and "already received" in replayed[1]["ignored"], replayed
    assert replayed_later == (202, {"delivery": "replay-2", "release": a, "builds": [], "older": [GROUP],
                                    "ignored": "older than the running release"})
    time.sleep(3)  # long enough for a build request to have been received and recorded
    assert ledger(cluster).recent_rollouts(GROUP, 100) == rollouts
    assert ledger(cluster).group_info(GROUP)["desired_release"] == b
    assert all(current_release(cluster, i) == b for i in INSTANCES)

    # When the developer forces the branch back to A (git push --force)
    git.Repo(info.app_repo).git.update_ref("refs/heads/main", a)
    status, forced = push(cluster, push_payload("sample-app", "main", b, a, forced=True,
                                                pushed_at=int(time.time()) + 2))

    # Then A is rolled out again, and the rollout's record says the push was forced
    assert status == 202 and forced["forced"] is True and len(forced["builds"]) == 1, forced
    record = finished(cluster, forced["builds"][0]["rollout_id"])
    assert record["state"] == "completed" and record["forced"] is True
    assert all(current_release(cluster, i) == a for i in INSTANCES)

    # When B's push is replayed once its claim expired: the ledger cannot tell (B was built after A),
    # so a build is requested, and the builder refuses it, B being no longer the branch's tip
    claim_expires(cluster, push_b)
    status, replayed_b = push(cluster, push_b, delivery="replay-3")
    assert status == 202 and len(replayed_b["builds"]) == 1, replayed_b
    record = finished(cluster, replayed_b["builds"][0]["rollout_id"])
    assert record["state"] == "build_failed" and record["reason"] == "refused: not the branch tip"
    assert ledger(cluster).group_info(GROUP)["desired_release"] == a
    assert all(current_release(cluster, i) == a for i in INSTANCES)
