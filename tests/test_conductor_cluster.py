"""Batches on a real local cluster of five API instances: how many update at once, from the ledger's ticket times.

A cluster of its own (the rollout suite's has three instances): its cost is the five instances'
boot and two rollouts. The policy comes from the sample app's ``skynet.yml`` and from
``skynet deploy --max-parallel``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clusterkit import current_release, ledger, skynet

from benchmarks.overlap import Span, batch_of, policy_of, updating_at_once
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

INSTANCES = tuple(f"api-{n}" for n in range(1, 6))
SAMPLE_SPEC = (Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml").read_text()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=len(INSTANCES))
    yield cluster
    cluster.down()


def deploy(cluster: LocalCluster, *options: str) -> dict:
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--wait", "--json",
                    "--timeout", "180", *options)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def most_at_once(rollout_id: str, view: dict) -> tuple[int, list[str]]:
    """The most tickets of the rollout updating at one time, and the batch violations, from the ticket times."""
    policy = policy_of(rollout_id, view)
    spans = [Span(t["started_at"], t["finished_at"], rollout_id, t["number"], batch_of(policy, t["number"]))
             for t in view["tickets"]]
    most = max(sum(1 for other in spans if other.start <= span.start < other.end) for span in spans)
    return most, updating_at_once("local-api", spans)


def test_a_batch_of_two_in_a_group_of_five_never_updates_three(cluster, tmp_path):
    # Given five instances and a commit whose skynet.yml asks for batches of two
    sha = commit_files(cluster.require_info().app_repo, tmp_path / "app",
                       {"skynet.yml": SAMPLE_SPEC + "rollout:\n  max_parallel: 2\n"}, "Batches of two")

    # When it is deployed
    result = deploy(cluster)

    # Then it completes on all five, the canary alone, then two at a time and never three
    assert result["state"] == "completed" and result["release"] == sha
    view = ledger(cluster).rollout_view(result["rollout_id"]) or {}
    assert view["max_parallel"] == ["2"] and view["batches"] == [2]
    assert sorted(t["instance"] for t in view["tickets"] if t["state"] == "done") == list(INSTANCES)
    most, violations = most_at_once(result["rollout_id"], view)
    assert violations == [] and most == 2
    for instance in INSTANCES:
        assert current_release(cluster, instance) == sha


def test_a_percentage_ramp_given_for_one_rollout(cluster, tmp_path):
    # Given the same group and a new commit
    sha = commit_files(cluster.require_info().app_repo, tmp_path / "app", {"VERSION": "ramp\n"}, "Ramp")

    # When it is deployed with a ramp of one, then 40% (two of five)
    result = deploy(cluster, "--max-parallel", "1,40%")

    # Then the rollout took the ramp, not the two of skynet.yml: the canary, one, then two at most
    assert result["state"] == "completed" and result["release"] == sha
    view = ledger(cluster).rollout_view(result["rollout_id"]) or {}
    assert view["max_parallel"] == ["1", "40%"] and view["batches"] == [1, 2]
    most, violations = most_at_once(result["rollout_id"], view)
    assert violations == [] and most <= 2
