"""Config updates and agent self-updates as rollouts, on a real local cluster of three API instances.

The sample app reads its greeting from ``$SKYNET_CONFIG_DIR/app.json`` when it starts,
and its health check fails on the tickets named in ``$SKYNET_CONFIG_DIR/fail-on.txt``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clusterkit import app_answer, assert_one_at_a_time, registry, rollout, rollout_state, skynet, wait_for

from skynet_tasks import __version__
from skynet_tasks.local.cluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

INSTANCES = ("api-1", "api-2", "api-3")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=3)
    try:
        result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--wait",
                        "--timeout", "180")
        assert result.returncode == 0, result.stderr
        yield cluster
    finally:
        cluster.down()


def config_file(cluster: LocalCluster, instance: str, name: str) -> str:
    root = Path(next(i.root for i in cluster.require_info().instances if i.id == instance))
    return (root / "config" / name).read_text()


def worker_log(cluster: LocalCluster, instance: str) -> str:
    root = Path(next(i.root for i in cluster.require_info().instances if i.id == instance))
    return (root / "logs" / "worker.log").read_text(errors="replace")


def push_config(cluster: LocalCluster, tree: Path) -> tuple[int, dict]:
    result = skynet(cluster, "config", "push", "--env", "local", "--layer", "api", str(tree), "--wait", "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_config_push_rolls_out_one_instance_at_a_time_and_a_failed_reload_halts_it(cluster, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.json").write_text('{"greeting": "hello"}\n')

    code, pushed = push_config(cluster, tree)

    assert code == 0 and pushed["added"] == ["app.json"], pushed
    [started] = pushed["rollouts"]
    assert started["state"] == "completed"
    tickets = rollout(cluster, started["rollout_id"])["tickets"]
    assert [t["state"] for t in tickets] == ["done"] * 3 and {t["instance"] for t in tickets} == set(INSTANCES)
    assert_one_at_a_time(tickets)
    for instance in INSTANCES:
        assert app_answer(cluster, instance)["greeting"] == "hello"  # the app was restarted on the new config
    wait_for(lambda: all(e.config_version == started["version"] for e in registry(cluster).endpoints("local", "api")),
             20, "every instance to report the new config version")

    # A config whose reload fails its health check on ticket 2
    (tree / "app.json").write_text('{"greeting": "broken"}\n')
    (tree / "fail-on.txt").write_text("ticket:2\n")
    code, pushed = push_config(cluster, tree)

    assert code == 1
    [halted] = pushed["rollouts"]
    assert halted["state"] == "halted"
    tickets = rollout(cluster, halted["rollout_id"])["tickets"]
    assert [t["state"] for t in tickets] == ["done", "failed", "cancelled"]
    assert "health check failed" in tickets[1]["error"]
    canary, failed, never = (t["instance"] for t in tickets)
    assert app_answer(cluster, canary)["greeting"] == "broken"
    assert app_answer(cluster, failed)["greeting"] == "hello"  # back on its previous config, and serving
    assert json.loads(config_file(cluster, failed, "app.json")) == {"greeting": "hello"}
    assert app_answer(cluster, never)["greeting"] == "hello"

    # The fix supersedes the halted rollout and completes.
    (tree / "fail-on.txt").unlink()
    (tree / "app.json").write_text('{"greeting": "fixed"}\n')
    code, pushed = push_config(cluster, tree)
    assert code == 0 and pushed["removed"] == ["fail-on.txt"]
    for instance in INSTANCES:
        assert app_answer(cluster, instance)["greeting"] == "fixed"


def test_an_edit_uploaded_during_a_config_rollout_is_not_what_its_tickets_install(cluster, tmp_path):
    # Given a config-update rollout, published with the config as it was pushed, whose canary's health
    # check waits (hold-on.txt, the sample app's check.py) until the gate below opens
    tree, gate = tmp_path / "tree", tmp_path / "gate"
    tree.mkdir()
    (tree / "app.json").write_text('{"greeting": "published"}\n')
    (tree / "hold-on.txt").write_text(f"ticket:1 {gate}\n")
    result = skynet(cluster, "config", "push", "--env", "local", "--layer", "api", str(tree), "--json")
    assert result.returncode == 0, result.stderr
    [started] = json.loads(result.stdout)["rollouts"]
    rollout_id = started["rollout_id"]

    # When the config is edited while the canary updates (uploaded only: no rollout of its own), then the
    # canary's check is let through
    (tree / "app.json").write_text('{"greeting": "edited later"}\n')
    edit = skynet(cluster, "config", "push", "--env", "local", "--layer", "api", str(tree), "--no-rollout", "--json")
    assert edit.returncode == 0 and json.loads(edit.stdout)["changed"] == ["app.json"], edit.stderr
    assert [t["state"] for t in rollout(cluster, rollout_id)["tickets"]].count("done") == 0, \
        "the canary was over before the edit (its check waits 12 s at most): the test proves nothing"
    gate.touch()

    # Then every ticket installs the published config, not the edit
    wait_for(lambda: rollout_state(cluster, rollout_id) == "completed", 180, "the rollout to complete")
    assert [t["state"] for t in rollout(cluster, rollout_id)["tickets"]] == ["done"] * 3
    for instance in INSTANCES:
        assert app_answer(cluster, instance)["greeting"] == "published"
        assert json.loads(config_file(cluster, instance, "app.json")) == {"greeting": "published"}
    wait_for(lambda: all(e.config_version == started["version"] for e in registry(cluster).endpoints("local", "api")),
             20, "every instance to report the published config version")


def build_agent_wheel(tmp_path: Path, version: str) -> Path:
    """A wheel of this source tree, its version bumped, built offline."""
    source = tmp_path / "skynet-src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "benchmarks", "__pycache__", "*.pyc", ".local-cluster", "build", "*.egg-info",
        ".mypy_cache", ".ruff_cache", ".pytest_cache"))
    for name, pattern in (("pyproject.toml", r'^version = "[^"]+"'), ("skynet_tasks/__init__.py",
                                                                       r'^__version__ = "[^"]+"')):
        path = source / name
        path.write_text(re.sub(pattern, pattern.split(" = ")[0].lstrip("^") + f' = "{version}"', path.read_text(),
                               count=1, flags=re.M))
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(source)], check=True, timeout=180)
    [wheel] = out.glob("skynet-*.whl")
    return wheel


def test_a_self_update_rollout_bumps_the_agent_version_on_every_instance(cluster, tmp_path):
    version = f"{__version__}.post1"
    wheel = build_agent_wheel(tmp_path, version)
    before = {e.instance_id: e.agent_version for e in registry(cluster).endpoints("local", "api")}
    assert set(before.values()) == {__version__}
    app_pids = {instance: app_answer(cluster, instance)["pid"] for instance in INSTANCES}
    failures: list[str] = []
    served: dict[str, set[int]] = {instance: set() for instance in INSTANCES}
    stop = threading.Event()

    def keep_asking_every_app() -> None:  # each app on its own port: the agents restart, the apps do not
        while not stop.is_set():
            for instance in INSTANCES:
                try:
                    served[instance].add(app_answer(cluster, instance)["pid"])
                except OSError as error:
                    failures.append(f"{instance}: {error!r}")
            time.sleep(0.05)

    asking = threading.Thread(target=keep_asking_every_app)
    asking.start()
    try:
        result = skynet(cluster, "agent", "push", "--env", "local", str(wheel), "--wait", "--json", "--timeout",
                        "240", timeout=280)
    finally:
        stop.set()
        asking.join()
    assert failures == [] and served == {instance: {pid} for instance, pid in app_pids.items()}

    assert result.returncode == 0, result.stdout + result.stderr
    [started] = json.loads(result.stdout)["rollouts"]
    tickets = rollout(cluster, started["rollout_id"])["tickets"]
    assert [t["state"] for t in tickets] == ["done"] * 3
    assert_one_at_a_time(tickets)
    # An instance reports the new version as its update succeeds, then leaves, restarts on the new agent
    # and registers again, seconds later: a config rollout started meanwhile leaves it out (not live).
    def restarted_on_the_new_agent() -> bool:
        restarted = all("restarting the worker on the newly installed agent" in worker_log(cluster, instance)
                        for instance in INSTANCES)
        entries = {e.instance_id: e.agent_version for e in registry(cluster).endpoints("local", "api")}
        return restarted and entries == {instance: version for instance in INSTANCES}

    wait_for(restarted_on_the_new_agent, 60, "every instance to restart on the new agent and register again")

    # The restarted workers still work: a config push goes through all of them.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.json").write_text('{"greeting": "from the new agent"}\n')
    code, pushed = push_config(cluster, tree)
    assert code == 0, pushed
    for instance in INSTANCES:
        assert app_answer(cluster, instance)["greeting"] == "from the new agent"
