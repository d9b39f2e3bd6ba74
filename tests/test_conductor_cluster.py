"""Rollout policies on a real local cluster of five API instances: batches (how many update at once, from the
ledger's ticket times), manual promotion and maintenance windows.

A cluster of its own (the rollout suite's has three instances): its cost is the five instances'
boot and four rollouts. The policy comes from the sample app's ``skynet.yml`` and from
``skynet deploy --max-parallel`` and ``--now``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clusterkit import current_release, ledger, skynet, wait_for

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


def started(cluster: LocalCluster, *options: str) -> str:
    """Deploy main without waiting; the rollout's id."""
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--json", *options)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return str(json.loads(result.stdout)["rollout_id"])


def view_of(cluster: LocalCluster, rollout_id: str) -> dict:
    return ledger(cluster).rollout_view(rollout_id) or {}


def test_a_manual_promotion_outside_every_window_with_deploy_now(cluster, tmp_path):
    # Given a commit whose skynet.yml holds the canary for a person, then the rest at once, with a window that is
    # closed now (it is on no day of the next three), and a deploy that overrides the window
    closed_days = ",".join(datetime.fromtimestamp(time.time() + 86400 * n, UTC).strftime("%a").lower()
                           for n in range(3, 7))
    old = current_release(cluster, INSTANCES[0])
    sha = commit_files(cluster.require_info().app_repo, tmp_path / "app", {"skynet.yml": SAMPLE_SPEC + (
        f"rollout:\n  canary: manual\n  max_parallel: 100%\n  windows: [{{days: '{closed_days}'}}]\n")}, "Manual")
    rollout_id = started(cluster, "--now")

    # When the canary has updated, the rollout waits, visibly, and nothing else updates
    view = wait_for(lambda: (v := view_of(cluster, rollout_id)).get("reason", "").startswith(
        "waiting for promotion") and v, 180, "the rollout to wait for promotion")
    time.sleep(2.5)  # two heartbeats and their ticks: still nobody else moves
    view = view_of(cluster, rollout_id)
    tickets = {t["instance"]: t["state"] for t in view["tickets"]}
    canary = view["canary"]
    assert view["state"] == "running" and not view.get("published") and tickets.pop(canary) == "done"
    assert set(tickets.values()) <= {"waiting"}
    assert [current_release(cluster, i) for i in INSTANCES if i != canary] == [old] * 4
    status = skynet(cluster, "rollout", "status", rollout_id, "--env", "local")
    assert status.returncode == 0 and "waiting for promotion" in status.stdout, status

    # Then the operator's promote publishes it and the rest roll out; a second promote is refused
    promote = skynet(cluster, "rollout", "promote", rollout_id, "--env", "local")
    assert promote.returncode == 0, (promote.stdout, promote.stderr)
    watched = skynet(cluster, "rollout", "status", rollout_id, "--env", "local", "--watch", "--timeout", "180")
    assert watched.returncode == 0, (watched.stdout, watched.stderr)
    for instance in INSTANCES:
        assert current_release(cluster, instance) == sha
    again = skynet(cluster, "rollout", "promote", rollout_id, "--env", "local")
    assert again.returncode == 1 and "nothing to promote" in again.stderr, again
    trail = ledger(cluster).actions("local-api", 10)
    assert any(a["action"] == "deploy --now" and a["rollout_id"] == rollout_id and a.get("identity")
               for a in trail)
    assert any(a["action"] == "promote" and a["rollout_id"] == rollout_id and a["actor"].startswith("cli:")
               for a in trail)


def test_a_rollout_pushed_before_its_window_waits_and_starts_when_it_opens(cluster, tmp_path):
    # Given a window (seconds resolution, UTC) that opens a little after the build and its canary's join
    # would take, as the last rollout took them on this cluster
    last = view_of(cluster, ledger(cluster).recent_rollouts("local-api", 1)[-1])
    join = min(float(t["started_at"]) for t in last["tickets"]) - float(last["created_at"])
    opens = datetime.fromtimestamp(time.time() + min(60.0, 2 * join + 5), UTC).replace(microsecond=0)
    hours = f"{opens:%H:%M:%S}-{opens + timedelta(minutes=30):%H:%M:%S}"
    sha = commit_files(cluster.require_info().app_repo, tmp_path / "app", {"skynet.yml": SAMPLE_SPEC + (
        f"rollout:\n  max_parallel: 100%\n  windows: [{{days: {opens:%a}, hours: '{hours}', tz: UTC}}]\n")},
        "Windowed")

    # When it is deployed, it joins the line and waits, saying when its window opens
    rollout_id = started(cluster)
    view = wait_for(lambda: (v := view_of(cluster, rollout_id)).get("reason", "").startswith(
        "waiting for its window") and v, 120, "the rollout to wait for its window")
    assert view["reason"] == f"waiting for its window, opens at {opens:%Y-%m-%d %H:%M:%S} UTC"
    assert all(t["state"] == "waiting" for t in view["tickets"])

    # Then no ticket starts before the window opens, the first one within a few heartbeats after, and it completes
    watched = skynet(cluster, "rollout", "status", rollout_id, "--env", "local", "--watch", "--timeout", "240")
    assert watched.returncode == 0, (watched.stdout, watched.stderr)
    first = min(float(t["started_at"]) for t in view_of(cluster, rollout_id)["tickets"])
    assert opens.timestamp() <= first < opens.timestamp() + 30
    for instance in INSTANCES:
        assert current_release(cluster, instance) == sha
