"""A rollout on a real local cluster whose AWS misbehaves as AWS does: conflicts and throttling on.

Real workers (Celery on moto's SQS), real git, the operator's CLI: each meets throttled DynamoDB, S3
and SQS requests, and the conductor's transactions may overlap. (Under SQS throttling a rollout was once
seen to complete without a member: kombu's empty answer to a throttled receive stopped that member's
worker, and the conductor rightly left a member without a heartbeat out; ``compat/kombu_sqs_errors.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clusterkit import assert_one_at_a_time, current_release, rollout, skynet

from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

INSTANCES = ("api-1", "api-2", "api-3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0,
                           faults="conflicts,throttle=0.1")
    cluster.up(api=3)
    yield cluster
    cluster.down()


def test_a_rollout_completes_one_at_a_time_on_an_aws_that_throttles_and_cancels_overlaps(cluster, tmp_path: Path):
    # Given a cluster on an AWS that throttles one DynamoDB, S3 or SQS request in ten
    sha = commit_files(cluster.require_info().app_repo, tmp_path / "app", {"VERSION": "faulty weather\n"}, "Release")

    # When the operator deploys a new commit and waits
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--wait", "--json",
                    "--timeout", "240", timeout=280)

    # Then it completes, one instance at a time, every instance on the sha; throttling really happened
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    done = json.loads(result.stdout)
    assert done["state"] == "completed" and done["release"] == sha
    tickets = rollout(cluster, done["rollout_id"])["tickets"]
    assert sorted(t["instance"] for t in tickets) == list(INSTANCES)
    assert [t["state"] for t in tickets] == ["done", "done", "done"]
    assert_one_at_a_time(tickets)
    for instance in INSTANCES:
        assert current_release(cluster, instance) == sha
    assert cluster.moto is not None
    counts = cluster.moto.fault_counts()
    # (S3 sees a dozen requests in a rollout: whether one of them was throttled is left to chance)
    assert counts.get("throttled:dynamodb", 0) > 0 and counts.get("throttled:sqs", 0) > 0, counts
    # and no worker stopped, or lost its connection
    logs = [path.read_text(errors="replace") for path in cluster.dir.glob("instances/*/logs/worker.log")]
    assert len(logs) == len(INSTANCES)
    assert not any("Unrecoverable error" in log or "Connection to broker lost" in log for log in logs)
