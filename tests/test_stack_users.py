"""No root where none is needed: on an instance of the stack-built cluster, ``ps`` shows each role's user.

One cluster (one API instance, one proxy) booted from its user data. A PHP app is pushed,
built and served; then each instance's process table is read, as ``ps`` on the instance
would show it:

- the app (the recipe's runner, nginx, PHP-FPM) is ``www-data``, PHP-FPM runs without
  ``--allow-to-run-as-root``, and the app cannot change the release it serves;
- the worker (both Celery workers) and a proxy's nginx are ``skynet``; the build step ran as
  ``skynet-build`` (it wrote its user into the release) and could not plant a file among the worker's;
  the lifecycle hook ran as ``skynet-build`` too (its update log says so), read the app's config
  and could not change the release it runs in;
- the app reads its config and its own secret (0640, the app's group) and not the deploy key (0600,
  the worker's alone);
- instance metadata (the role's credentials) answers root and the worker's user only: the app's
  and the build's users are refused by the user data's nftables rule;
- root is only what plays systemd (``workers.appctl`` and the app's supervisor under it),
  which on EC2 is systemd itself (docs/installing.md says why it stays root).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from stackkit import ENV, instance_processes, instance_users, instances_of, skynet, stack_up

from skynet_tasks.local.sample_repo import commit_files
from skynet_tasks.local.stack_cluster import StackInstance

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

INDEX_PHP = """<?php
header('Content-Type: application/json');
$user = function_exists('posix_geteuid') ? posix_getpwuid(posix_geteuid())['name']
    : trim(shell_exec('/usr/bin/id -un'));
// A remote-code bug would try this: change the release it serves.
$changed = @file_put_contents(__DIR__ . '/index.php', 'owned') !== false;
// What it may read of its config: its settings and its secret, not the worker's deploy key.
$read = [];
foreach (['greeting.txt', 'secrets/db.secret', 'ssh/deploy.pem'] as $name) {
    $read[$name] = @file_get_contents('/etc/config/' . $name) !== false;
}
echo json_encode(['user' => $user, 'changed_the_release' => $changed, 'config_read' => $read]), "\\n";
"""
# The build step records who ran it, in the release.
# A hostile step would try to plant a file among the worker's (the next release it installs).
BUILD_SPEC = ("stack: php-nginx\nbuild:\n  - [sh, -c, 'id -un > public/built-by.txt; "
              "touch /srv/skynet/releases/planted 2> public/planting.txt || true']\n"
              # The hook says who runs it, reads the app's config, and tries to change the verified release.
              "hooks:\n  after_install:\n    - [sh, -c, 'echo \"hook user: $(id -un)\"; "
              "echo \"hook read: $(cat /etc/config/greeting.txt)\"; "
              "touch public/planted-by-hook 2>&1 || true']\n")
# The app's config: its settings and secret, and a deploy key (the worker's, for git).
CONFIG = {"greeting.txt": "from config", "secrets/db.secret": "hunter2", "deploy.pem": "not a real key"}
ROLLOUT: dict[str, str] = {}  # the deploy's rollout id, whose logs hold the hook's output
# What plays systemd on the local instance (on EC2, systemd itself): root by design.
SERVICE_MANAGER = ("workers.appctl", "skynet_tasks.supervisor")
ALLOWED_ROOT = {"service manager"}


def own_role(argv: list[str]) -> str | None:
    """Which part of the instance a command line says it is, if it says."""
    text = " ".join(argv)
    if any(part in text for part in SERVICE_MANAGER):
        return "service manager"
    if "skynet worker" in text or "skynet_tasks.cli worker" in text:
        return "worker"
    if "nginx" in text and "/rp/" in text:
        return "proxy"
    if "skynet_tasks.stacks.run" in text or "nginx" in text or "php-fpm" in text:
        return "app"
    return None


def roles(instance: StackInstance) -> list[tuple[str, str, list[str]]]:
    """(role, user, command line) of each process of the instance; a process that does not say what it
    is (an nginx worker) has its parent's role."""
    table = instance_processes(instance)

    def role(pid: int) -> str:
        for _ in range(16):
            if pid not in table:
                return "other"
            parent, _user, argv = table[pid]
            found = own_role(argv)
            if found:
                return found
            pid = parent
        return "other"

    return [(role(pid), user, argv) for pid, (_, user, argv) in table.items()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, agent_wheel: Path):
    with stack_up(tmp_path_factory.mktemp("stack"), api=1, rp=1, wheel=agent_wheel) as cluster:
        tree = tmp_path_factory.mktemp("config")
        for name, text in CONFIG.items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_text(text)
            (tree / name).chmod(0o600)
        pushed = skynet(cluster, "config", "push", "--env", ENV, "--layer", "api", str(tree), "--wait",
                        "--timeout", "120")
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        work = tmp_path_factory.mktemp("app") / "clone"
        commit_files(cluster.require_info().app_repo, work, {
            "skynet.yml": BUILD_SPEC, "public/index.php": INDEX_PHP,
            "app.py": None, "check.py": None, "build.py": None}, "PHP app")
        deployed = skynet(cluster, "deploy", "--env", ENV, "--ref", "main", "--wait", "--timeout", "180")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        found = re.search(r"rollout (\S+):", deployed.stdout)
        assert found, deployed.stdout
        ROLLOUT["id"] = found.group(1)
        yield cluster


def test_the_app_runs_as_www_data_and_php_fpm_is_not_allowed_to_run_as_root(stack):
    (api,) = instances_of(stack, "api")
    (proxy,) = instances_of(stack, "rp")
    table = roles(api)
    app = [(user, argv) for what, user, argv in table if what == "app"]
    answer = json.loads(urllib.request.urlopen(f"http://{proxy.address}:8000/api/{ENV}/", timeout=10).read())

    assert any("php-fpm" in " ".join(argv) for _, argv in app) and any("nginx" in argv[0] for _, argv in app), table
    assert {user for user, _ in app} == {"www-data"}, app
    assert not any("--allow-to-run-as-root" in argv for _, _, argv in table)
    assert answer == {"user": "www-data", "changed_the_release": False,
                      "config_read": {"greeting.txt": True, "secrets/db.secret": True, "ssh/deploy.pem": False}}


def test_root_on_an_instance_is_only_what_plays_systemd(stack):
    for instance in instances_of(stack, "api") + instances_of(stack, "rp"):
        table = roles(instance)
        rooted = [(what, argv) for what, user, argv in table if user == "root"]

        assert {what for what, _ in rooted} <= ALLOWED_ROOT, table
        assert "other" not in {what for what, _, _ in table}, table
        assert {user for what, user, _ in table if what == "worker"} == {"skynet"}, table
    (proxy,) = instances_of(stack, "rp")
    assert {user for what, user, _ in roles(proxy) if what == "proxy"} == {"skynet"}


def test_the_build_step_ran_as_the_build_user_and_could_not_write_the_workers_files(stack):
    (api,) = instances_of(stack, "api")
    release = Path(api.disk) / "srv-upper" / "skynet" / "current"

    assert (release / "public" / "built-by.txt").read_text() == "skynet-build\n"
    assert "Permission denied" in (release / "public" / "planting.txt").read_text()
    assert not (Path(api.disk) / "srv-upper" / "skynet" / "releases" / "planted").exists()


def test_the_hook_ran_as_the_build_user_read_the_config_and_could_not_change_the_release(stack):
    (api,) = instances_of(stack, "api")
    logs = skynet(stack, "logs", "--env", ENV, ROLLOUT["id"])
    release = Path(api.disk) / "srv-upper" / "skynet" / "current"

    assert logs.returncode == 0, logs.stderr
    assert "hook user: skynet-build" in logs.stdout, logs.stdout
    assert "hook read: from config" in logs.stdout, logs.stdout
    assert "planted-by-hook': Permission denied" in logs.stdout
    assert not (release / "public" / "planted-by-hook").exists()


def test_the_config_is_the_apps_groups_and_the_deploy_key_the_workers_alone(stack):
    (api,) = instances_of(stack, "api")
    users = instance_users(api)
    groups = {int(f[2]): f[0] for f in (line.split(":") for line in (Path(api.disk) / "etc-upper" / "group")
                                         .read_text().splitlines()) if len(f) > 2}
    config = Path(api.disk) / "etc-upper" / "skynet" / "config" / "current"

    def owner(name: str) -> tuple[str, str, int]:
        found = (config / name).stat()
        return users[found.st_uid], groups[found.st_gid], found.st_mode & 0o777

    assert owner("greeting.txt") == ("skynet", "www-data", 0o640)
    assert owner("secrets/db.secret") == ("skynet", "www-data", 0o640)
    assert owner("ssh/deploy.pem") == ("skynet", "www-data", 0o600)


def connects_to_metadata(instance: StackInstance, uid: int) -> bool:
    """Whether a process of user ``uid`` on the instance opens a connection to instance metadata."""
    tried = subprocess.run(["ip", "netns", "exec", instance.namespace, "setpriv", f"--reuid={uid}", f"--regid={uid}",
                            "--clear-groups", "bash", "-c", "exec 3<>/dev/tcp/169.254.169.254/80"],
                           capture_output=True, text=True, timeout=30, check=False)
    return tried.returncode == 0


def test_only_root_and_the_worker_reach_instance_metadata(stack):
    (api,) = instances_of(stack, "api")
    uids = {name: uid for uid, name in instance_users(api).items()}

    reached = {name: connects_to_metadata(api, uids[name]) for name in ("skynet", "www-data", "skynet-build")}

    assert reached == {"skynet": True, "www-data": False, "skynet-build": False}
