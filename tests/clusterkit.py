"""Helpers for tests that drive a real local cluster (moto server, real workers, real git).

The cluster itself is ``skynet_tasks.local.cluster.LocalCluster``: the same code as
``skynet local up``. These helpers only call the CLI and read state;
commits go to the sample repository through ``skynet_tasks.local.sample_repo.commit_files``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kombu.pools

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.deadletters import dead_letter_counts
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.messages import Messenger
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry
from skynet_tasks.resources import resolve
from skynet_tasks.status import collect_status


def sender_for(environment: dict[str, str]) -> Messenger:
    """A Messenger in this test process that talks to the endpoint in ``environment``.

    kombu pools producers process-wide by broker URL (``sqs://`` for every
    endpoint), so a pooled connection to another test's moto server is dropped first.
    """
    kombu.pools.reset()
    os.environ.update(environment)
    return Messenger(create_app(), "local")


def skynet(cluster: LocalCluster, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the ``skynet`` CLI against the cluster, as a user with ``env.sh`` sourced would."""
    env = {**os.environ, **cluster.require_info().environment}
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


STATUS_ROLLOUTS = 20  # rollouts per group in a status


def status(cluster: LocalCluster) -> dict[str, Any]:
    """What ``skynet status --env local --json --rollouts 20`` prints, read in this process.

    The same ``collect_status`` the command prints, with the same dead-letter counts, through JSON as
    the command prints it: the tests poll it, and a CLI process per poll spent a second or two (more
    under load) starting an interpreter. ``status_from_cli`` runs the command itself.
    """
    aws = cluster.aws()
    data = collect_status(Ledger(aws.dynamodb, names.state_table("local")),
                          Registry(aws.dynamodb, names.endpoints_table("local")), "local", cluster.heartbeat_max_age,
                          STATUS_ROLLOUTS, dead_letters=dead_letter_counts(Queues(aws.sqs), "local"))
    return dict(json.loads(json.dumps(data)))


def status_from_cli(cluster: LocalCluster) -> dict[str, Any]:
    """What ``skynet status --env local --json --rollouts 20`` prints, by running it."""
    result = skynet(cluster, "status", "--env", "local", "--json", "--rollouts", str(STATUS_ROLLOUTS))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def group_status(cluster: LocalCluster, group: str = "local-api") -> dict[str, Any]:
    return next(g for g in status(cluster)["groups"] if g["name"] == group)


def rollout(cluster: LocalCluster, rollout_id: str) -> dict[str, Any]:
    return next(r for r in group_status(cluster)["rollouts"] if r["id"] == rollout_id)


def rollout_state(cluster: LocalCluster, rollout_id: str) -> str | None:
    """The rollout's state, from its record alone (None before it exists): what a wait polls, where the
    status (``rollout``) is every group's recent rollouts, each read whole."""
    item = ledger(cluster).rollout_item(rollout_id)
    return str(item["state"]) if item and "state" in item else None


def ledger(cluster: LocalCluster) -> Ledger:
    return Ledger(cluster.aws().dynamodb, names.state_table("local"))


def registry(cluster: LocalCluster) -> Registry:
    return Registry(cluster.aws().dynamodb, names.endpoints_table("local"))


def repo_bucket(cluster: LocalCluster) -> str:
    """The cluster's repo bucket, named as the stack names it (with moto's account id)."""
    return resolve(cluster.aws(), "local").repo_bucket


def current_release(cluster: LocalCluster, instance_id: str) -> str | None:
    root = Path(next(i.root for i in cluster.require_info().instances if i.id == instance_id))
    try:
        return os.readlink(root / "current").rsplit("/", 1)[-1]
    except OSError:
        return None


def app_answer(cluster: LocalCluster, instance_id: str) -> dict[str, Any]:
    """What the instance's app answers on its own port (it serves whatever happens to its agent)."""

    port = next(i.app_port for i in cluster.require_info().instances if i.id == instance_id)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_one_at_a_time(tickets: list[dict[str, Any]]) -> None:
    """Tickets that ran were served in number order, and no two update intervals overlap."""
    ran = sorted((t for t in tickets if t.get("started_at")), key=lambda t: t["number"])
    for earlier, later in zip(ran, ran[1:], strict=False):
        assert earlier["finished_at"] is not None, f"ticket {earlier['number']} never finished"
        assert earlier["finished_at"] <= later["started_at"], (
            f"ticket {earlier['number']} ({earlier['instance']}) still updating when ticket {later['number']} "
            f"({later['instance']}) started")
