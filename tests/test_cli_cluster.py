"""``skynet rollout status --watch`` and ``skynet logs --follow`` on a real local cluster of two instances.

The operator starts a deploy without waiting, then follows it from other shells: the watch prints the
build's phase and each ticket as it moves, and exits with the rollout's outcome (0 completed, 1 halted).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clusterkit import skynet, wait_for

from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

SAMPLE_SPEC = (Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml").read_text()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=2, rp=0)
    yield cluster
    cluster.down()


def follow(cluster: LocalCluster, *args: str) -> subprocess.Popen[str]:
    """Start ``skynet ARGS`` in the background, as a second shell would."""
    env = {**os.environ, **cluster.require_info().environment}
    return subprocess.Popen([sys.executable, "-m", "skynet_tasks.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def deploy_and_watch(cluster: LocalCluster, workdir: Path, files: dict[str, str | None],
                     gate: Path | None = None) -> tuple[str, ...]:
    """Push ``files``, deploy, follow the logs and watch the rollout; with ``gate``, the canary's health check
    (told by the release's hold-on.txt) waits until the watch has printed its first headline."""
    commit_files(cluster.require_info().app_repo, workdir, files, "A release to watch")
    started = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--json")
    assert started.returncode == 0, started.stderr
    rollout_id = json.loads(started.stdout)["rollout_id"]
    logs = follow(cluster, "logs", rollout_id, "--env", "local", "--follow", "--timeout", "200")
    watch = follow(cluster, "rollout", "status", rollout_id, "--env", "local", "--watch", "--timeout", "200")
    lines: list[str] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda out=out, into=into: into.extend(out or ()), daemon=True)
               for out, into in ((watch.stdout, lines), (watch.stderr, errors))]
    for reader in readers:
        reader.start()
    if gate is not None:
        wait_for(lambda: any(line.startswith("rollout ") for line in lines), 60, "the watch's first headline")
        gate.touch()
    watch.wait(timeout=240)
    for reader in readers:
        reader.join(10)
    watch_err = "".join(errors)
    followed, logs_err = logs.communicate(timeout=60)
    return rollout_id, str(watch.returncode), "".join(lines), watch_err, str(logs.returncode), followed, logs_err


def test_watch_follows_a_good_rollout_from_its_build_to_completion_and_exits_0(cluster, tmp_path):
    # (the canary waits at a gate until the watch has begun: the rollout would otherwise be over before it)
    gate = tmp_path / "gate"
    rollout_id, code, watched, err, logs_code, followed, logs_err = deploy_and_watch(
        cluster, tmp_path / "work", {"VERSION": "watched release\n", "hold-on.txt": f"ticket:1 {gate}\n"}, gate)

    assert code == "0", err
    lines = watched.splitlines()
    # the first headline says where the rollout was when the watch began: its build's phase, or a ticket
    first = next(line for line in lines if line.startswith("rollout "))
    assert re.search(r": (building|running), [01]/2 updated, \d+\.\d s: (build|built|ticket|waiting)", first), first
    tickets = [line.rsplit(" ", 2)[0] for line in lines if line.startswith("ticket") and line.endswith(" s")]
    assert tickets[0].startswith("ticket 1/2 ") and tickets[0].endswith(" updating")
    assert {t.split()[1] for t in tickets} == {"1/2", "2/2"}
    assert [t.split()[-1] for t in tickets][-1] == "done"
    assert lines[-1].startswith(f"rollout {rollout_id} (group local-api, code ")
    assert "completed, 2/2 updated" in lines[-1] and lines[-1].endswith("every ticket done")
    # the logs, followed meanwhile: the build's, then each ticket's as it was written
    assert logs_code == "0", logs_err
    titles = [line for line in followed.splitlines() if line.startswith("==> ")]
    assert [t.split(":")[0] for t in titles][:1] == ["==> build"]
    assert sorted(t.split(" (")[0] for t in titles[1:]) == ["==> ticket 1", "==> ticket 2"]


def test_watch_of_a_rollout_that_halts_on_its_second_ticket_exits_1(cluster, tmp_path):
    rollout_id, code, watched, err, logs_code, followed, _ = deploy_and_watch(
        cluster, tmp_path / "work", {"skynet.yml": SAMPLE_SPEC, "fail-on.txt": "ticket:2\n",
                                     "VERSION": "a release that fails on ticket 2\n"})

    assert code == "1", err
    last = watched.splitlines()[-1]
    assert last.startswith(f"rollout {rollout_id} ") and "halted (" in last and "1/2 updated" in last
    assert "ticket 2/2" in watched and "failed" in watched
    assert logs_code == "1"
    assert "health check failed" in followed
