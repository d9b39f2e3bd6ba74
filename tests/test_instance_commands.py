"""``skynet instance re-register`` and ``skynet.publish`` on a real local cluster of one API instance.

moto's server, a real ``celery worker``; heartbeats are minutes apart here, so a
registration that moves was made by the message the test sent.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from clusterkit import ledger, registry, sender_for, skynet, wait_for

from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.messages import PUBLISH_TASK
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import RolloutKind
from skynet_tasks.taskruns import TaskRuns

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=600.0, heartbeat_max_age=1800.0)
    cluster.up(api=1)
    yield cluster
    cluster.down()


def entry(cluster: LocalCluster, instance_id: str = "api-1") -> Endpoint:
    found = registry(cluster).find("local", instance_id)
    assert found is not None, f"{instance_id} is not registered"
    return found[1]


def test_re_register_has_the_instance_register_afresh_at_once(cluster):
    # Given an instance whose next heartbeat is minutes away
    before = entry(cluster)

    # When the operator asks it to re-register
    result = skynet(cluster, "instance", "re-register", "api-1", "--env", "local", timeout=60)

    # Then the command returns at once, and the instance's registration moves within seconds
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "instance api-1: re-register requested"
    after = wait_for(lambda: (e := entry(cluster)).heartbeat > before.heartbeat and e, 30,
                     "the instance to register again")
    assert after.last_task == "re_register (operator)"
    assert after.release == before.release and after.health == before.health


def test_re_register_of_an_unknown_instance_is_refused_and_creates_no_queue(cluster):
    result = skynet(cluster, "instance", "re-register", "api-9", "--env", "local", timeout=60)

    assert result.returncode == 4
    assert "no instance api-9 is registered in env local" in result.stderr
    assert not any(name.endswith("-inst-api-9") for name in Queues(cluster.aws().sqs).list("skynet-local-"))


def test_re_register_refuses_an_id_that_cannot_name_a_queue(cluster):
    result = skynet(cluster, "instance", "re-register", "api_1;", "--env", "local", timeout=60)

    assert result.returncode == 4
    assert "instance id 'api_1;' is not valid" in result.stderr


def test_publishing_a_rollout_whose_release_was_never_built_leaves_it_building(cluster):
    # Given a rollout still building, of a commit nobody built
    rollout_id = new_rollout_id()
    sha = "0" * 40
    assert ledger(cluster).create_rollout(rollout_id, "local-api", sha, RolloutKind.CODE,
                                          {"requested_at": time.time(), "source": "test"})
    started = time.time()

    # When an instance is asked to publish it
    sender_for(cluster.require_info().environment).to_instance("api-1", PUBLISH_TASK, {"rollout_id": rollout_id})

    # Then the task ran and announced nothing: the rollout is still building
    runs = TaskRuns(cluster.aws().dynamodb, "skynet-local-state")
    wait_for(lambda: [r for r in runs.recent("api-1") if r.task == PUBLISH_TASK and r.started_at >= started - 1],
             30, "the publish task to run")
    time.sleep(2)  # an announcement would have reached the conductor by now
    item = ledger(cluster).rollout_item(rollout_id)
    assert item is not None and item["state"] == "building"


def test_the_package_names_every_task_of_the_card():
    package = Path(__file__).parent.parent / "skynet_tasks" / "tasks"
    modules = {path.stem for path in package.glob("*.py")}
    assert {"build", "publish", "take_ticket", "update", "re_register", "maintenance"} <= modules


def test_an_instance_stopped_as_soon_as_it_registered_still_leaves_the_registry(cluster):
    # Given an instance starting: it registers first, then starts its Celery worker (a second or more)
    started = cluster.start_instance("api-2", "api")
    wait_for(lambda: registry(cluster).find("local", "api-2"), 60, "api-2 to register", interval=0.02)

    # When it is stopped at once, before its worker took SIGTERM over
    cluster.stop_instance("api-2")

    # Then it left the registry at once: the proxies route to it no more
    log = (Path(started.root) / "logs" / "worker.log").read_text()
    assert registry(cluster).find("local", "api-2") is None, log[-2000:]
    assert "instance api-2 deregistered" in log
