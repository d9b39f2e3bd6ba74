"""Stack recipes for real: Debian's nginx and PHP-FPM (and gunicorn) on loopback serve ROOT/current.

The first tests run a recipe's service directly, as the installer starts it; the last
one deploys a PHP app through a real local cluster twice and sees the rolling update
switch what nginx and PHP-FPM serve.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from clusterkit import app_answer, skynet

from skynet_tasks.buildspec import BuildSpecError, parse_buildspec
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files
from skynet_tasks.services import ProcessServices

pytestmark = pytest.mark.timeout(240)

SHA_1, SHA_2 = "a" * 40, "b" * 40
INDEX_PHP = """<?php
header('Content-Type: application/json');
echo json_encode(['php' => PHP_VERSION, 'release' => getenv('SKYNET_RELEASE'),
                  'message' => trim(file_get_contents(__DIR__ . '/../VERSION'))]), "\\n";
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def make_release(root: Path, sha: str, files: dict[str, str]) -> None:
    folder = root / "releases" / sha
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    link = root / "current.tmp"
    link.unlink(missing_ok=True)
    os.symlink(Path("releases") / sha, link)
    os.replace(link, root / "current")


class Service:
    """A recipe's service process, started the way the installer starts one."""

    def __init__(self, recipe: str, root: Path, sha: str, **extra: str) -> None:
        self.port = free_port()
        self.root = root
        env = {"PATH": os.environ["PATH"], "PORT": str(self.port), "SKYNET_ROOT": str(root),
               "SKYNET_RELEASE": sha, "SKYNET_INSTANCE_ID": "api-1", "SKYNET_CONFIG_DIR": str(root / "config"),
               **extra}
        self.process = subprocess.Popen([sys.executable, "-m", "skynet_tasks.stacks.run", recipe], cwd=root / "current",
                                        env=env, stderr=subprocess.PIPE, text=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_healthy(self, path: str = "/.skynet/health") -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
            try:
                if get(self.url(path))[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the recipe never became healthy")

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(20)


def test_the_php_recipe_serves_php_through_nginx_and_php_fpm_and_stops_cleanly(tmp_path):
    make_release(tmp_path, SHA_1, {"public/index.php": INDEX_PHP, "VERSION": "one\n",
                                   "public/static.txt": "plain file\n", "public/.env": "SECRET=1\n"})
    service = Service("php-nginx", tmp_path, SHA_1)
    try:
        service.wait_healthy()
        status, body = get(service.url("/"))
        answer = json.loads(body)
        assert status == 200 and answer["release"] == SHA_1 and answer["message"] == "one"
        assert answer["php"].startswith("8.")
        assert get(service.url("/static.txt")) == (200, b"plain file\n")  # nginx serves files itself
        assert get(service.url("/.env"))[0] == 403  # dot files are never served
        health = json.loads(get(service.url("/.skynet/health"))[1])
        assert health == {"ok": True, "release": SHA_1}  # nginx reached PHP-FPM
    finally:
        code = service.stop()
    assert code == 0
    assert not list(tmp_path.glob("run/stack/*.pid")) or all(
        not Path(f"/proc/{p.read_text().strip()}").exists() for p in tmp_path.glob("run/stack/*.pid"))


def test_the_static_recipe_serves_the_public_folder(tmp_path):
    make_release(tmp_path, SHA_1, {"public/index.html": "<h1>one</h1>\n"})
    service = Service("static", tmp_path, SHA_1)
    try:
        service.wait_healthy()
        assert get(service.url("/")) == (200, b"<h1>one</h1>\n")
        assert get(service.url("/missing"))[0] == 404
    finally:
        assert service.stop() == 0


def test_the_python_recipe_serves_a_wsgi_app_with_gunicorn(tmp_path):
    make_release(tmp_path, SHA_1, {"wsgi.py": "def application(environ, start_response):\n"
                                              "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                                              "    return [environ['PATH_INFO'].encode()]\n"})
    service = Service("python", tmp_path, SHA_1)
    try:
        service.wait_healthy("/")
        assert get(service.url("/hello")) == (200, b"/hello")
    finally:
        assert service.stop() == 0


@pytest.mark.parametrize("extra, error", [
    ({"SKYNET_ADDRESS": "127.0.0.1; include /etc/passwd"}, "IP address"),
    ({"SKYNET_RELEASE": "abc}; location / {"}, "not a commit sha"),
    ({"SKYNET_STACK_USER": "root; daemon off"}, "not a user name"),
])
def test_hostile_values_never_reach_the_templates(tmp_path, extra, error):
    make_release(tmp_path, SHA_1, {"public/index.html": "x"})
    service = Service("static", tmp_path, SHA_1, **extra)
    assert service.process.wait(20) != 0
    assert error in (service.process.stderr.read() if service.process.stderr else "")
    assert not (tmp_path / "run" / "stack" / "nginx.conf").exists()


def test_a_repo_names_a_recipe_and_gets_its_service_and_health_check_unless_it_gives_its_own():
    spec = parse_buildspec("stack: php-nginx\n")
    assert spec.service is not None and spec.service.command[-2:] == ("skynet_tasks.stacks.run", "php-nginx")
    assert spec.health is not None and spec.health.http == "/.skynet/health"
    own = parse_buildspec("stack: static\nhealth:\n  http: /ready\n")
    assert own.health is not None and own.health.http == "/ready"
    with pytest.raises(BuildSpecError, match="no stack recipe 'cobol'"):
        parse_buildspec("stack: cobol\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=2)
    yield cluster
    cluster.down()


def deploy(cluster: LocalCluster) -> None:
    result = skynet(cluster, "deploy", "--env", "local", "--layer", "api", "--ref", "main", "--wait", "--json",
                    "--timeout", "180")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.cluster
def test_a_rolling_update_switches_what_nginx_and_php_fpm_serve(cluster, tmp_path):
    app_repo = cluster.require_info().app_repo
    workdir = tmp_path / "app"
    first = commit_files(app_repo, workdir, {"skynet.yml": "stack: php-nginx\n", "public/index.php": INDEX_PHP,
                                             "VERSION": "php one\n", "app.py": None, "check.py": None,
                                             "build.py": None}, "PHP app")
    deploy(cluster)
    for instance in ("api-1", "api-2"):
        assert app_answer(cluster, instance) == {**app_answer(cluster, instance), "release": first,
                                                 "message": "php one"}

    second = commit_files(app_repo, workdir, {"VERSION": "php two\n"}, "PHP app, second release")
    deploy(cluster)
    for instance in ("api-1", "api-2"):
        answer = app_answer(cluster, instance)
        assert answer["release"] == second and answer["message"] == "php two" and answer["php"].startswith("8.")


@pytest.mark.cluster
def test_a_worker_that_starts_on_an_installed_release_whose_app_is_down_serves_it_again(cluster):
    info = cluster.require_info()
    instance = next(i for i in info.instances if i.id == "api-1")
    served = app_answer(cluster, "api-1")["release"]
    # Given the worker stopped and its app gone (a host reboot, or systemd stopping the unit's processes)
    cluster.stop_instance("api-1")
    ProcessServices(Path(instance.root) / "run", Path(instance.root) / "logs" / "app.log").stop()
    with pytest.raises(OSError):
        app_answer(cluster, "api-1")

    # When the worker starts again
    cluster.start_instance("api-1", "api", app_port=instance.app_port)
    cluster.wait_registered(["api-1"], 60)

    # Then the release on disk is served again, before the instance registered
    assert app_answer(cluster, "api-1")["release"] == served
