"""The rollout core end to end: a real local cluster of three API instances.

moto's server over HTTP, real `celery worker` processes on its SQS queues, real git.
The tests run in order on one cluster, as an operator would use it: each starts
from whatever the previous one left, which is itself part of what is checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import signal
import tarfile
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from clusterkit import (
    app_answer,
    assert_one_at_a_time,
    current_release,
    group_status,
    ledger,
    repo_bucket,
    rollout,
    rollout_state,
    sender_for,
    skynet,
    status_from_cli,
    wait_for,
)
from clusterkit import (
    registry as cluster_registry,
)

from skynet_tasks import names
from skynet_tasks.app import create_app
from skynet_tasks.artifact_store import release_prefix
from skynet_tasks.artifacts import Manifest
from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.context import Context
from skynet_tasks.deploys import request_build
from skynet_tasks.ledger import Release
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files, create_sample_repo
from skynet_tasks.local.traffic import traffic_to
from skynet_tasks.membership import sweep
from skynet_tasks.messages import BUILD_TASK
from skynet_tasks.proctable import child_pids, process_alive
from skynet_tasks.queues import Queues, instance_queue
from skynet_tasks.registry import Endpoint
from skynet_tasks.settings import Settings
from skynet_tasks.states import ReleaseState, RolloutKind
from skynet_tasks.taskruns import TaskRuns
from skynet_tasks.webhook.local import push_payload, send_webhook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

INSTANCES = ("api-1", "api-2", "api-3")
SAMPLE_SPEC = (Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml").read_text()
# For a release that fails its health check on purpose: a failing check is retried until its timeout, so
# the sample's 15 s are waited in full. 10 s still leaves the passing tickets of the same release (about 1 s
# here) a wide margin under load; the soak's releases run with 10 s too.
FAILING_SPEC = SAMPLE_SPEC.replace("  timeout: 15\n", "  timeout: 10\n")
assert FAILING_SPEC != SAMPLE_SPEC, "the sample's health check timeout moved: update FAILING_SPEC"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("cluster")
    # The tests stop and kill workers. A stopped worker's long poll stays waiting in the local AWS for its
    # SKYNET_POLL_WAIT (20 s) and takes the next message that comes: a maintenance message is then in
    # flight for the queue's visibility timeout (20 s) and the group's FIFO line waits behind it; a build
    # taken from an instance queue waits for a member to send it again: after 8 s here (45 s by default).
    # A claim takes about a second even under load, and a nudge of a build that was only slow is a
    # duplicate request, which the build claim absorbs. (Shorter polls would shorten the first wait too,
    # but the killed update's message then came back before its ticket's deadline, and ran its hook again.)
    cluster = LocalCluster(directory, heartbeat_interval=1.0, heartbeat_max_age=15.0,
                           extra_env={"SKYNET_BUILD_NUDGE_AFTER": "8"})
    cluster.up(api=3, rp=1)
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work") / "sample-app"


def deploy(cluster: LocalCluster, ref: str = "main") -> tuple[int, dict]:
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", ref, "--wait", "--json",
                    "--timeout", "180")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_good_push_is_built_once_canaried_and_rolled_out_one_at_a_time(cluster, workdir):
    # Given three instances and a new commit
    sha = commit_files(cluster.require_info().app_repo, workdir, {"VERSION": "release two\n"}, "Release two")

    # When the operator deploys it and waits
    code, result = deploy(cluster)

    # Then the rollout completes, every instance runs the sha, and the app serves it
    assert code == 0, result
    assert result["state"] == "completed" and result["release"] == sha
    done = rollout(cluster, result["rollout_id"])
    tickets = done["tickets"]
    assert [t["state"] for t in tickets] == ["done", "done", "done"]
    assert sorted(t["instance"] for t in tickets) == list(INSTANCES)
    # exactly one build, and its builder took ticket 1 as the canary
    release = ledger(cluster).release("local-api", sha)
    assert release is not None and release.state is ReleaseState.BUILT
    assert tickets[0]["instance"] == release.builder == done["builder"]
    build_logs = cluster.aws().s3.list_objects_v2(Bucket=repo_bucket(cluster), Prefix="logs/builds/")
    assert sum(sha in obj["Key"] for obj in build_logs.get("Contents", [])) == 1
    assert_one_at_a_time(tickets)
    for instance in INSTANCES:
        assert current_release(cluster, instance) == sha
        assert app_answer(cluster, instance)["release"] == sha
    group = group_status(cluster)
    assert group["desired_release"] == sha
    # `skynet status --json` itself prints the same (the polls here call the function it prints, in process)
    printed = next(g for g in status_from_cli(cluster)["groups"] if g["name"] == "local-api")
    assert printed["desired_release"] == sha
    assert [(t["number"], t["instance"], t["state"]) for t in next(
        r for r in printed["rollouts"] if r["id"] == result["rollout_id"])["tickets"]] == \
        [(t["number"], t["instance"], t["state"]) for t in tickets]
    wait_for(lambda: all(i["release"] == sha for i in group_status(cluster)["instances"]), 20,
             "every instance to re-register with the new release")
    # each task run was recorded for the dashboard: the builder's build, every instance's update
    runs = TaskRuns(cluster.aws().dynamodb, "skynet-local-state")
    builder_runs = runs.recent(release.builder)
    assert any(r.task == "skynet.build" and r.state == "success" and r.runtime for r in builder_runs)
    for instance in INSTANCES:
        assert any(r.task == "skynet.update" and r.state == "success" for r in runs.recent(instance)), instance


def test_a_failed_build_touches_no_instance_and_keeps_its_log(cluster, workdir):
    before = {i: current_release(cluster, i) for i in INSTANCES}
    spec = ("build:\n  - [python3, -c, \"import sys; print('compiling...'); sys.exit('syntax error in app.py')\"]\n"
            "service:\n  command: [python3, app.py]\n")
    sha = commit_files(cluster.require_info().app_repo, workdir, {"skynet.yml": spec}, "Broken build")

    code, result = deploy(cluster)

    assert code == 1
    assert result["state"] == "build_failed"
    assert "build failed" in result["reason"]
    release = ledger(cluster).release("local-api", sha)
    assert release is not None and release.state is ReleaseState.FAILED
    log_text = cluster.aws().s3.get_object(Bucket=repo_bucket(cluster), Key=release.log_key)["Body"].read().decode()
    assert "syntax error in app.py" in log_text
    assert rollout(cluster, result["rollout_id"])["tickets"] == []
    assert {i: current_release(cluster, i) for i in INSTANCES} == before


def test_a_health_check_failing_on_the_second_ticket_halts_the_rollout(cluster, workdir):
    previous = current_release(cluster, "api-1")
    sha = commit_files(cluster.require_info().app_repo, workdir,
                       {"skynet.yml": FAILING_SPEC, "fail-on.txt": "ticket:2\n", "VERSION": "bad release\n"},
                       "Release that fails its health check on ticket 2")

    code, result = deploy(cluster)

    assert code == 1
    assert result["state"] == "halted"
    tickets = rollout(cluster, result["rollout_id"])["tickets"]
    assert [t["state"] for t in tickets] == ["done", "failed", "cancelled"]
    assert "health check failed after 10s" in tickets[1]["error"]
    assert tickets[2]["started_at"] is None  # the third instance never started updating
    canary, failed, never = (t["instance"] for t in tickets)
    assert current_release(cluster, canary) == sha
    assert current_release(cluster, failed) == previous  # back on its previous release ...
    assert app_answer(cluster, failed)["release"] == previous  # ... and still serving
    assert current_release(cluster, never) == previous
    update_log = cluster.aws().s3.get_object(Bucket=repo_bucket(cluster), Key=tickets[1]["log_key"])
    assert b"rolled back" in update_log["Body"].read()


def test_duplicated_builds_and_maintenance_messages_never_update_two_at_once(cluster, workdir):
    # A fixing commit supersedes the halted rollout.
    sha = commit_files(cluster.require_info().app_repo, workdir,
                       {"fail-on.txt": None, "VERSION": "fixed\n", "skynet.yml": SAMPLE_SPEC}, "Fix the health check")
    info = cluster.require_info()
    messenger = sender_for(info.environment)
    request = {"group": "local-api", "repo": info.app_repo, "branch": "main", "sha": sha,
               "rollout_id": new_rollout_id(), "source": "test", "requested_at": 0}
    # When the same build is requested twice (distinct deduplication ids, as after a nudge), and every
    # maintenance event is duplicated
    messenger.build("local-api", request)
    messenger.build("local-api", request, attempt="again")
    for instance in INSTANCES:
        for copy in range(3):
            # Distinct deduplication ids: SQS delivers every copy, as after a redelivery.
            messenger.maintenance("local-api", {"type": "ticket_taken", "rollout_id": request["rollout_id"],
                                                "instance": instance}, f"dup-{instance}-{copy}")
    done = stopped_rollout(cluster, request["rollout_id"], 150)

    # Then one build, one ticket per instance, never two updating at once
    assert done["state"] == "completed", done
    tickets = done["tickets"]
    assert sorted(t["instance"] for t in tickets) == list(INSTANCES)
    assert_one_at_a_time(tickets)
    assert all(current_release(cluster, i) == sha for i in INSTANCES)
    build_logs = cluster.aws().s3.list_objects_v2(Bucket=repo_bucket(cluster), Prefix="logs/builds/")
    assert sum(sha in obj["Key"] for obj in build_logs.get("Contents", [])) == 1
    halted = [r for r in group_status(cluster)["rollouts"] if r["state"] == "superseded"]
    assert halted, "the halted rollout was superseded by the fix"


def test_a_build_request_naming_another_repository_is_refused_and_builds_nothing(cluster, tmp_path):
    # Given a repository the group does not track, whose commit anyone who can post to a queue could name
    foreign = create_sample_repo(tmp_path / "foreign", "foreign-app")
    sha = commit_files(foreign, tmp_path / "work", {"VERSION": "not ours\n"}, "Code from elsewhere")
    before = {i: current_release(cluster, i) for i in INSTANCES}
    rollout_id = new_rollout_id()

    # When a build request naming it reaches the group's maintenance queue
    sender_for(cluster.require_info().environment).build("local-api", {
        "group": "local-api", "repo": str(foreign), "branch": "main", "sha": sha, "rollout_id": rollout_id,
        "source": "forged", "requested_at": 0})
    refused = wait_for(lambda: (r := rollout_or_none(cluster, rollout_id)) and r["state"] == "build_failed" and r,
                       60, f"rollout {rollout_id} to be refused")

    # Then it is refused naming both repositories, nothing was built, and no instance moved
    assert str(foreign) in refused["reason"] and cluster.require_info().app_repo in refused["reason"]
    assert ledger(cluster).release("local-api", sha) is None
    assert {i: current_release(cluster, i) for i in INSTANCES} == before


def rollout_or_none(cluster: LocalCluster, rollout_id: str):
    return next((r for r in group_status(cluster)["rollouts"] if r["id"] == rollout_id), None)


def stopped_rollout(cluster: LocalCluster, rollout_id: str, timeout: float):
    """The rollout once it has completed or halted; AssertionError if it has not within ``timeout`` seconds."""
    wait_for(lambda: rollout_state(cluster, rollout_id) in ("completed", "halted"), timeout,
             f"rollout {rollout_id} to complete or halt")
    return rollout_or_none(cluster, rollout_id)


def agent_processes(instance_pid: int) -> list[int]:
    """The instance's worker and the processes under it, less the app's supervisor and app."""
    found, todo = [], [instance_pid]
    while todo:
        pid = todo.pop()
        command = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
        if b"skynet_tasks.supervisor" not in command and b"skynet_tasks.appspec" not in command:
            found.append(pid)
            todo.extend(child_pids(pid))
    return found


def test_an_idle_instance_runs_its_worker_and_at_most_its_pool_child_nothing_left_behind(cluster):
    # The worker (with the conductor and the heartbeat in it) and, after a task, its pool child; git's
    # helpers (cat-file) and hooks ended with the builds and updates that ran on every api instance by now.
    for instance in cluster.require_info().instances:
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in agent_processes(instance.pid)]
        assert 1 <= len(commands) <= 2, (instance.id, commands)
        assert all(b"skynet_tasks.cli\0" in command and b"\0worker\0" in command for command in commands), \
            (instance.id, commands)


def test_a_killed_update_process_returns_its_message_and_the_line_waits_for_its_deadline(cluster, workdir, tmp_path):
    sample = Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml"
    runs = tmp_path / "ticket-2-hook-runs"
    slow_spec = sample.read_text().replace("update_timeout: 60", "update_timeout: 12") + (
        "hooks:\n  before_install:\n    - [python3, -c, \"import os, time; "
        f"os.environ['SKYNET_TICKET'] == '2' and open('{runs}', 'a').write('run\\\\n'); "
        "time.sleep(60 if os.environ['SKYNET_TICKET'] == '2' else 0)\"]\n")
    commit_files(cluster.require_info().app_repo, workdir, {"skynet.yml": slow_spec}, "Slow update on ticket 2")
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--json")
    rollout_id = json.loads(result.stdout)["rollout_id"]

    # When the process running ticket 2's update (the worker's pool child) is killed
    ticket = wait_for(lambda: next((t for t in (rollout_or_none(cluster, rollout_id) or {"tickets": []})["tickets"]
                                    if t["number"] == 2 and t["state"] == "updating"), None), 90,
                      "ticket 2 to start updating")
    wait_for(lambda: runs.exists(), 30, "ticket 2's hook to run")
    worker = next(i for i in cluster.require_info().instances if i.id == ticket["instance"])
    (child,) = [pid for pid in child_pids(worker.pid)  # the pool child: forked, so the worker's own command
                if Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{worker.pid}/cmdline").read_bytes()]
    os.kill(child, signal.SIGKILL)
    killed_at = time.time()

    # Then nobody else starts updating, and the rollout halts once the deadline passes
    def halted():
        current = rollout_or_none(cluster, rollout_id)
        assert current is not None
        updating = [t for t in current["tickets"] if t["state"] == "updating"]
        assert len(updating) <= 1 and all(t["number"] == 2 for t in updating)
        return current if current["state"] == "halted" else None

    final = wait_for(halted, 60, "the rollout to halt")
    states = {t["number"]: t for t in final["tickets"]}
    assert states[2]["state"] == "failed" and "deadline" in states[2]["error"]
    assert all(t["state"] == "cancelled" and t.get("started_at") is None for n, t in states.items() if n > 2)
    untouched = set(INSTANCES) - {states[1]["instance"], ticket["instance"]}
    assert untouched and all(current_release(cluster, i) != final["release"] for i in untouched)
    assert_one_at_a_time(final["tickets"])
    # The update's message was not lost with its process: it came back (after the instance queue's
    # visibility timeout) to the same worker, which never stopped, and found the ticket already failed.
    task_runs = TaskRuns(cluster.aws().dynamodb, "skynet-local-state")
    wait_for(lambda: any(r.task == "skynet.update" and r.started_at > killed_at
                         for r in task_runs.recent(ticket["instance"])), 60, "the update's message to come back")
    assert process_alive(worker.pid) and runs.read_text().count("run") == 1


def test_a_missing_or_malformed_skynet_yml_fails_the_build_with_a_clear_error(cluster, workdir):
    app_repo = cluster.require_info().app_repo

    commit_files(app_repo, workdir, {"skynet.yml": None}, "Forgot the build spec")
    code, missing = deploy(cluster)
    commit_files(app_repo, workdir, {"skynet.yml": "build:\n  - [python3, build.py\nservice: {}\n"}, "Typo")
    code_malformed, malformed = deploy(cluster)

    assert (code, missing["state"]) == (1, "build_failed")
    assert "no skynet.yml at the repository root" in missing["reason"]
    assert (code_malformed, malformed["state"]) == (1, "build_failed")
    assert "skynet.yml is not valid YAML at line" in malformed["reason"]
    # No instance runs either commit. (Not "no instance moved": one restarted by the test before may
    # still be installing the group's desired release at boot, which is right.)
    assert not {current_release(cluster, i) for i in INSTANCES} & {missing["release"], malformed["release"]}


def publish_crafted_release(cluster: LocalCluster, tarball: Path, manifest_sha256: str) -> str:
    """Store a release as if a builder had built it, with whatever artifact the test hands in."""
    info = cluster.require_info()
    sha = secrets.token_hex(20)
    prefix = release_prefix(info.app_repo, "main", sha)
    manifest = Manifest(repo=info.app_repo, branch="main", sha=sha, sha256=manifest_sha256,
                        size=tarball.stat().st_size, files=[], builder="test", built_at=time.time(),
                        build_log_key="", artifact_key=f"{prefix}/artifact.tar.gz")
    s3 = cluster.aws().s3
    s3.put_object(Bucket=repo_bucket(cluster), Key=manifest.artifact_key, Body=tarball.read_bytes())
    s3.put_object(Bucket=repo_bucket(cluster), Key=f"{prefix}/manifest.json", Body=manifest.to_json().encode())
    states = ledger(cluster)
    assert states.claim_build(Release(group="local-api", sha=sha, state=ReleaseState.BUILDING, repo=info.app_repo,
                                      branch="main", builder="test", started_at=time.time()), lease=60)
    states.finish_build("local-api", sha, "test", ReleaseState.BUILT, {
        "artifact_key": manifest.artifact_key, "manifest_key": f"{prefix}/manifest.json",
        "sha256": manifest_sha256, "size": manifest.size, "update_timeout": 30})
    return sha


@pytest.mark.parametrize("kind", ["checksum mismatch", "tar slip"])
def test_an_artifact_that_fails_verification_is_refused_and_nothing_is_installed(cluster, tmp_path, kind):
    before = {i: current_release(cluster, i) for i in INSTANCES}
    tarball = tmp_path / "artifact.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        payload = b"pwned\n"
        member = tarfile.TarInfo("../../../escaped.txt" if kind == "tar slip" else "app.py")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    checksum = hashlib.sha256(tarball.read_bytes()).hexdigest() if kind == "tar slip" else "0" * 64
    sha = publish_crafted_release(cluster, tarball, checksum)

    # When its rollout starts (a rollback or a redeploy of a built release goes this way)
    started = request_build(ledger(cluster), sender_for(cluster.require_info().environment), "local-api",
                            cluster.require_info().app_repo, "main", sha, source="test")
    final = stopped_rollout(cluster, started.rollout_id, 90)

    # Then the canary refuses it, the rollout halts, and no instance has a trace of it
    assert final["state"] == "halted"
    canary = final["tickets"][0]
    assert canary["state"] == "failed"
    expected = "checksum mismatch" if kind == "checksum mismatch" else "path contains '..'"
    assert "refused" in canary["error"] and expected in canary["error"], canary["error"]
    assert all(t["started_at"] is None for t in final["tickets"][1:])
    for instance in cluster.require_info().instances:
        assert not (Path(instance.root) / "releases" / sha).exists()
        assert not any(Path(instance.root).rglob("escaped.txt"))
    assert {i: current_release(cluster, i) for i in INSTANCES} == before


# A worker stopped or killed leaves its long polls waiting in the local AWS (see ``cluster``): the tests that
# stop workers come before two that send the group nothing (drain, sweeper), and the rollout after them waits
# out what is left of those polls (``wait_out_stopped_polls``).
POLL_WAIT = Settings.poll_wait  # SKYNET_POLL_WAIT (the cluster's workers keep the default): a receive's wait
STOPPED_AT: list[float] = []  # when a test here last stopped or killed a worker (time.monotonic)


def wait_out_stopped_polls() -> None:
    """Wait until no receive of a worker a test stopped can still be waiting in the local AWS (a second spare).

    Its message would stay in flight for the maintenance queue's visibility timeout (20 s), the group's line
    behind it: waiting out what is left of the poll (the tests between take most of it) costs less.
    """
    if STOPPED_AT:
        time.sleep(max(0.0, STOPPED_AT[-1] + POLL_WAIT + 1 - time.monotonic()))


def test_a_new_instance_installs_the_desired_release_before_it_registers_and_leaves_cleanly(cluster):
    desired = group_status(cluster)["desired_release"]
    rollouts_before = len(group_status(cluster)["rollouts"])

    cluster.start_instance("api-4", "api")
    cluster.wait_registered(["api-4"], 60)

    # It registered already on the group's release, without a ticket in any rollout
    entry = next(e for e in cluster_registry(cluster).endpoints("local", "api") if e.instance_id == "api-4")
    assert entry.release == desired and current_release(cluster, "api-4") == desired
    assert app_answer(cluster, "api-4")["release"] == desired
    group = group_status(cluster)
    assert len(group["rollouts"]) == rollouts_before
    assert all(t["instance"] != "api-4" for r in group["rollouts"] for t in r["tickets"])

    # A clean stop takes it out of the registry at once
    cluster.stop_instance("api-4")
    STOPPED_AT.append(time.monotonic())
    assert "api-4" not in {e.instance_id for e in cluster_registry(cluster).endpoints("local")}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_app_keeps_serving_through_the_proxy_while_its_agent_stops_or_is_killed_and_restarts(cluster, sig):
    # Given an instance serving a release through the proxy
    info = cluster.require_info()
    assert info.rp_url
    if current_release(cluster, "api-1") is None:  # this test run alone
        assert deploy(cluster)[0] == 0
    proxy = f"{info.rp_url}/api/local/"
    app_pid = app_answer(cluster, "api-1")["pid"]
    with traffic_to(proxy) as seen:
        # When its worker is stopped (or killed), stays down a while, and starts again
        cluster.stop_instance("api-1", sig=sig)
        STOPPED_AT.append(time.monotonic())
        time.sleep(2)
        alone = app_answer(cluster, "api-1")  # the app, with no agent on its instance
        cluster.start_instance("api-1", "api")
        cluster.wait_registered(["api-1"], 60)
        wait_for(lambda: any(
            e.instance_id == "api-1" and e.health == "healthy" and e.heartbeat > time.time() - 2
            for e in cluster_registry(cluster).endpoints("local", "api")), 60, "api-1 to heartbeat healthy again")
        time.sleep(2)

    # Then no request failed, and the very same app process served throughout
    failures = seen.failures()
    assert len(seen.outcomes) > 50 and failures == [], f"{len(failures)} of {len(seen.outcomes)} failed: {failures[:5]}"
    assert alone["pid"] == app_pid
    assert app_answer(cluster, "api-1")["pid"] == app_pid
    assert {a["pid"] for a in seen.answers if a["instance"] == "api-1"} == {app_pid}


def test_a_drained_instance_reports_draining_until_undone(cluster):
    def health(instance_id: str) -> str:
        return next(i["health"] for i in group_status(cluster)["instances"] if i["id"] == instance_id)

    result = skynet(cluster, "drain", "--env", "local", "api-3")
    assert result.returncode == 0, result.stderr
    # At once; a heartbeat already on its way (every second here) may write it back until the instance
    # takes its drain, which its main process runs (it started the pool's child first, while heartbeats
    # wrote healthy: a failure of CI)
    wait_for(lambda: health("api-3") == "draining", 2, "api-3 draining")
    # Its own heartbeats keep it draining (heartbeat interval 1 s here).
    wait_for(lambda: ledger(cluster).actions("local-api")[0]["action"] == "drain", 10, "the recorded action")
    time.sleep(3)
    assert health("api-3") == "draining"

    assert skynet(cluster, "drain", "--env", "local", "--undo", "api-3").returncode == 0
    wait_for(lambda: health("api-3") == "healthy", 15, "api-3 back in service")
    unknown = skynet(cluster, "drain", "--env", "local", "api-99")
    assert unknown.returncode != 0 and "no instance api-99 is registered" in unknown.stderr


def test_the_sweeper_removes_long_silent_instances_and_the_operator_their_queues(cluster):
    aws = cluster.aws()
    settings = Settings.from_env(cluster.instance_environment("api-1", "api", 1))
    ctx = Context.create(settings, create_app(settings), aws)
    queues = Queues(aws.sqs)
    queues.ensure(instance_queue("local", "api-ghost"))
    cluster_registry(cluster).register("local", "api", Endpoint(
        instance_id="api-ghost", group="local-api", address="127.0.0.1", port=9, release="", health="healthy",
        heartbeat=time.time() - 3600))

    sweep(ctx)

    # Gone from the registry, by this sweep or by a member's heartbeat that swept first (about one
    # beat in ten sweeps, with the same code): a race this test used to lose now and then.
    assert "api-ghost" not in {e.instance_id for e in cluster_registry(cluster).endpoints("local")}
    assert "api-1" in {e.instance_id for e in cluster_registry(cluster).endpoints("local")}
    # An instance may not delete queues: the ghost's stays until the operator prunes
    assert "skynet-local-inst-api-ghost" in queues.list("skynet-local-inst-")

    young = skynet(cluster, "queues", "prune", "--env", "local", "--json")
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["deleted"] == []  # created a moment ago: it may be an instance booting
    assert "skynet-local-inst-api-ghost" in json.loads(young.stdout)["too_young"]
    pruned = skynet(cluster, "queues", "prune", "--env", "local", "--min-age", "0", "--json")

    assert "skynet-local-inst-api-ghost" in json.loads(pruned.stdout)["deleted"]
    left = set(queues.list("skynet-local-inst-"))
    assert "skynet-local-inst-api-ghost" not in left and "skynet-local-inst-api-ghost-dlq" not in left
    assert "skynet-local-inst-api-1" in queues.list("skynet-local-inst-")  # live members keep theirs


def test_a_signed_github_push_to_the_local_receiver_rolls_the_commit_out(cluster, workdir):
    wait_out_stopped_polls()  # the first rollout after the tests that stop workers
    info = cluster.require_info()
    assert info.webhook_url and info.webhook_secret_file
    assert os.stat(info.webhook_secret_file).st_mode & 0o077 == 0  # the secret file is private
    before = current_release(cluster, "api-1")
    sha = commit_files(info.app_repo, workdir, {"VERSION": "pushed through GitHub\n", "skynet.yml": SAMPLE_SPEC},
                       "Release through the webhook")

    status, answer = send_webhook(info.webhook_url, Path(info.webhook_secret_file).read_bytes().strip(), "push",
                                  push_payload("sample-app", "main", before or "0" * 40, sha))

    assert status == 202, answer
    rollout_id = answer["builds"][0]["rollout_id"]
    final = stopped_rollout(cluster, rollout_id, 120)
    assert final["state"] == "completed"
    assert all(current_release(cluster, i) == sha for i in INSTANCES)


def test_a_build_request_whose_message_was_lost_is_sent_again_by_the_members(cluster, workdir):
    # A worker that dies with a long poll outstanding can take a message with it until the visibility
    # timeout (15 minutes for builds). Here the rollout was recorded two minutes ago and its message lost.
    info = cluster.require_info()
    sha = commit_files(info.app_repo, workdir, {"VERSION": "lost and found\n"}, "Release whose message got lost")
    rollout_id = new_rollout_id()
    ledger(cluster).create_rollout(rollout_id, "local-api", sha, RolloutKind.CODE, {
        "repo": info.app_repo, "branch": "main", "source": "test", "requested_at": time.time() - 120})

    final = stopped_rollout(cluster, rollout_id, 120)

    assert final["state"] == "completed"
    assert all(current_release(cluster, i) == sha for i in INSTANCES)


def test_a_builder_killed_mid_build_leaves_the_build_to_a_member_once_its_claim_lapses(cluster, workdir, tmp_path):
    # Given a release whose first build takes a minute (its last step sleeps, the first time it runs)
    started = tmp_path / "build-started"
    step = (f"  - [python3, -c, \"import pathlib, time; p = pathlib.Path('{started}'); first = not p.exists(); "
            "p.touch(); time.sleep(60 if first else 0)\"]\n")
    slow_spec = SAMPLE_SPEC.replace("  - [python3, build.py]\n", "  - [python3, build.py]\n" + step)
    sha = commit_files(cluster.require_info().app_repo, workdir, {"skynet.yml": slow_spec, "VERSION": "rebuilt\n"},
                       "Release whose first builder dies")
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--json")
    rollout_id = json.loads(result.stdout)["rollout_id"]

    # When its builder's worker is killed during the build (the build's message goes with it, in flight for
    # the instance queue's visibility timeout: 15 minutes), and started again
    wait_for(started.exists, 90, "the build to reach its slow step")
    builder = ledger(cluster).release("local-api", sha).builder
    cluster.stop_instance(builder, sig=signal.SIGKILL)
    killed_at = time.time()
    cluster.start_instance(builder, "api")

    # Then a member builds it again once the dead build's claim lapses, and the rollout completes
    final = stopped_rollout(cluster, rollout_id, 120)
    assert final["state"] == "completed", final
    release = ledger(cluster).release("local-api", sha)
    assert release.state is ReleaseState.BUILT and release.started_at > killed_at
    assert all(current_release(cluster, i) == sha for i in INSTANCES)
    commit_files(cluster.require_info().app_repo, workdir, {"skynet.yml": SAMPLE_SPEC}, "Builds at full speed again")


def test_a_build_past_its_task_time_limit_fails_its_rollout_saying_so_and_leaves_no_step_running(cluster, workdir,
                                                                                                   tmp_path):
    # Given a release whose build step outlasts the build task's time limit: here 5 s, set on the message
    # as Celery allows (the task's own leaves room for the longest build_timeout, an hour)
    pid_file = tmp_path / "step.pid"
    step = f"  - [python3, -c, \"import os, time; open('{pid_file}', 'w').write(str(os.getpid())); time.sleep(60)\"]\n"
    info = cluster.require_info()
    sha = commit_files(info.app_repo, workdir, {"VERSION": "too slow\n", "skynet.yml": SAMPLE_SPEC.replace(
        "  - [python3, build.py]\n", "  - [python3, build.py]\n" + step)}, "A build too slow for its limit")
    before = {i: current_release(cluster, i) for i in INSTANCES}
    rollout_id = new_rollout_id()
    # (requested in the future: the members' nudge, 8 s here, must not send the build again with the task's
    # own limit)
    request = {"group": "local-api", "repo": info.app_repo, "branch": "main", "sha": sha, "rollout_id": rollout_id,
               "source": "test", "requested_at": time.time() + 300}
    ledger(cluster).create_rollout(rollout_id, "local-api", sha, RolloutKind.CODE, {
        k: request[k] for k in ("repo", "branch", "source", "requested_at")})

    # When an instance runs its build with that limit
    sender_for(info.environment).app.send_task(BUILD_TASK, kwargs={"request": request}, declare=[],
                                               queue=names.instance_queue("local", "api-1"), soft_time_limit=5,
                                               time_limit=60)

    # Then the rollout fails saying why, the build's log says it too, its step is not left running, and no
    # instance moved
    failed = wait_for(lambda: (r := rollout_or_none(cluster, rollout_id)) and r["state"] == "build_failed" and r,
                      60, f"rollout {rollout_id} to fail its build")
    assert "time limit" in failed["reason"], failed
    release = ledger(cluster).release("local-api", sha)
    assert release.state is ReleaseState.FAILED and release.log_key
    build_log = cluster.aws().s3.get_object(Bucket=repo_bucket(cluster), Key=release.log_key)["Body"].read()
    assert b"time limit" in build_log
    assert not process_alive(int(pid_file.read_text()))
    assert {i: current_release(cluster, i) for i in INSTANCES} == before
    commit_files(info.app_repo, workdir, {"skynet.yml": SAMPLE_SPEC}, "Builds within its limit again")


def test_through_the_proxy_a_rolling_update_fails_no_request(cluster, workdir):
    info = cluster.require_info()
    assert info.rp_url
    proxy = f"{info.rp_url}/api/local/"
    seen = wait_for(lambda: {json.loads(urlopen(proxy, timeout=5).read())["instance"] for _ in range(12)} >=
                    set(INSTANCES) or None, 30, "the proxy to route to every instance")
    assert seen
    sha = commit_files(info.app_repo, workdir, {"VERSION": "through the proxy\n"}, "Release watched through the proxy")
    with traffic_to(proxy) as seen:
        code, result = deploy(cluster)

    assert code == 0 and result["state"] == "completed", result
    failures = seen.failures()
    assert len(seen.outcomes) > 50 and failures == [], f"{len(failures)} of {len(seen.outcomes)} failed: {failures[:5]}"
    assert sha in {a["release"] for a in seen.answers}  # the new release was served through the proxy meanwhile
    rp_entry = next(e for e in cluster_registry(cluster).endpoints("local", "rp") if e.instance_id == "rp-1")
    assert rp_entry.health == "healthy"


def test_a_failure_on_ticket_3_reverts_the_moved_instances_failing_no_request_through_the_proxy(cluster, workdir):
    # Given every instance on one good release, served through the proxy
    info = cluster.require_info()
    assert info.rp_url
    releases = {current_release(cluster, i) for i in INSTANCES}
    if len(releases) != 1 or None in releases:  # run alone, or after a halt: one good release to go back to
        assert deploy(cluster)[0] == 0
    good = current_release(cluster, "api-1")
    good_version = app_answer(cluster, "api-1")["version"]
    assert all(current_release(cluster, i) == good for i in INSTANCES)
    proxy = f"{info.rp_url}/api/local/"
    bad = commit_files(info.app_repo, workdir,
                       {"fail-on.txt": "ticket:3\n", "VERSION": "reverted release\n", "skynet.yml": FAILING_SPEC},
                       "Release that fails its health check on ticket 3")
    try:
        # When it is deployed with --on-failure revert and ticket 3 fails
        with traffic_to(proxy) as seen:
            result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--wait",
                            "--json", "--timeout", "180", "--on-failure", "revert")
            halted = json.loads(result.stdout)
            revert_id = f"{halted['rollout_id']}-revert"
            reverted = stopped_rollout(cluster, revert_id, 150)
            time.sleep(1)  # the proxy's last reload after the canary's revert
    finally:  # the next tests build on this repository: no failing file left in it
        commit_files(info.app_repo, workdir, {"fail-on.txt": None, "skynet.yml": SAMPLE_SPEC},
                     "No failing ticket any more")

    # Then the rollout halted at ticket 3, saying which revert took the group back
    assert result.returncode == 1 and halted["state"] == "halted", halted
    assert f"reverted by {revert_id}" in halted["reason"]
    view = rollout(cluster, halted["rollout_id"])
    canary, second, failed = (t["instance"] for t in view["tickets"])
    assert [t["state"] for t in view["tickets"]] == ["done", "done", "failed"]
    # and the revert, a rollout of its own, took the second then the canary back to the previous release
    assert reverted["state"] == "completed", reverted
    revert_view = rollout(cluster, revert_id)
    assert revert_view["release"] == good and revert_view["revert_of"] == halted["rollout_id"]
    assert [t["instance"] for t in revert_view["tickets"]] == [second, canary]
    assert group_status(cluster)["desired_release"] == good
    # every instance is back, by its registry entry and by what it serves
    entries = {e.instance_id: e for e in cluster_registry(cluster).endpoints("local", "api")}
    for instance in INSTANCES:
        assert current_release(cluster, instance) == good, instance
        assert entries[instance].release == good, instance
        assert app_answer(cluster, instance)["version"] == good_version, instance
    # and not one request through the proxy failed, the failing release served meanwhile
    failures = seen.failures()
    assert len(seen.outcomes) > 50 and failures == [], f"{len(failures)} of {len(seen.outcomes)} failed: {failures[:5]}"
    assert bad in {a["release"] for a in seen.answers}
    show = skynet(cluster, "rollout", "show", "--env", "local", halted["rollout_id"])
    assert f"reverted_by {revert_id}" in show.stdout, show.stdout


# Last: it leaves the group's latest rollout halted, where the revert test above needs every instance on one
# good release (after it, it would first roll one out).
def test_a_bake_time_catches_an_instance_turning_unhealthy_2s_after_its_update(cluster, workdir):
    # Given skynet.yml's bake of 5 s, and a release whose app on ticket 2 turns unhealthy 2 s after
    # passing its health check (the sample app's unhealthy-after.txt)
    previous = current_release(cluster, "api-1")
    spec = SAMPLE_SPEC + "rollout:\n  min_healthy_time: 5s\n"
    sha = commit_files(cluster.require_info().app_repo, workdir,
                       {"skynet.yml": spec, "unhealthy-after.txt": "ticket:2 2\n", "VERSION": "unhealthy later\n"},
                       "Release whose app turns unhealthy 2 s after its update on ticket 2")

    # When it is deployed
    try:
        code, result = deploy(cluster)
    finally:  # the next tests build on this repository: no turning unhealthy, no bake left in it
        commit_files(cluster.require_info().app_repo, workdir, {"skynet.yml": SAMPLE_SPEC, "unhealthy-after.txt": None},
                     "No unhealthy ticket, no bake any more")

    # Then the canary baked its 5 s healthy, the rollout halted at ticket 2, which turned unhealthy in its bake
    assert code == 1 and result["state"] == "halted", result
    assert "turned unhealthy" in result["reason"] and "after its update" in result["reason"]
    tickets = rollout(cluster, result["rollout_id"])["tickets"]
    # (the third member takes its ticket when its notice arrives: under load, possibly after the halt)
    assert [t["state"] for t in tickets] in (["done", "failed", "cancelled"], ["done", "failed"]), tickets
    canary, failed = tickets[0]["instance"], tickets[1]["instance"]
    [never] = [i for i in INSTANCES if i not in (canary, failed)]
    assert tickets[0]["bake_seconds"] == 5 and tickets[0]["finished_at"] - tickets[0]["bake_started_at"] >= 5
    assert "turned unhealthy" in tickets[1]["error"] and "during its bake of 5s" in tickets[1]["error"]
    assert all(t["started_at"] is None for t in tickets[2:])
    # ... back on its previous release and serving, as after a failed health check
    assert current_release(cluster, canary) == sha
    assert current_release(cluster, failed) == previous
    assert app_answer(cluster, failed)["release"] == previous
    assert current_release(cluster, never) == previous
    update_log = cluster.aws().s3.get_object(Bucket=repo_bucket(cluster), Key=tickets[1]["log_key"])["Body"].read()
    assert b"baking 5s" in update_log and b"rolled back" in update_log
