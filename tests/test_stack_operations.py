"""What an operator does to a running stack, seen on the stack-built cluster.

One cluster of two API instances for the module, built by ``StackCluster`` from
cloudformation/php-nginx.yaml in moto with IAM enforced. The CLI runs as the operator would:
the operator's credentials, ``--env local``, and no ``SKYNET_*`` variable naming a bucket
(the stack's names are resolved). The instances act under their role only, so anything the
template's policy lacks shows up as a 403 in moto's log or an error in a worker's log.
Needs root (namespaces, mounts): CI runs as root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skynet_tasks.local.stack_cluster import StackCluster, StackInstance

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

ENV = "local"
REPO = Path(__file__).resolve().parent.parent
DENIED = re.compile(r'" 403 ')
# How botocore words a refusal: "An error occurred (AccessDenied) when calling…", "(403) … Forbidden".
REFUSED_IN_LOG = re.compile(r"AccessDenied|not authorized|\(403\)|Forbidden")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    cluster = StackCluster(tmp_path_factory.mktemp("stack"), env=ENV)
    cluster.up(api=2, rp=0)
    yield cluster
    cluster.down()


def operator_env(cluster: StackCluster) -> dict[str, str]:
    """This shell's environment with the operator's keys, and no SKYNET_* variable but the env."""
    assert cluster.info is not None
    own = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}
    return {**own, **cluster.info.operator, "SKYNET_ENV": ENV}


def skynet(cluster: StackCluster, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], env=operator_env(cluster),
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def config_file(instance: StackInstance, name: str) -> str | None:
    """``/etc/config/<name>`` as the instance sees it: its /etc is an overlay whose writes are in etc-upper."""
    etc = Path(instance.disk) / "etc-upper"
    link = etc / "config"
    if not link.is_symlink():
        return None
    generation = etc / os.readlink(link)  # relative: .config.d/<version>, beside the link
    path = generation / name
    return path.read_text() if path.is_file() else None


def worker_log(instance: StackInstance) -> str:
    path = Path(instance.disk) / "srv-upper" / "skynet" / "logs" / "worker.log"
    return path.read_text(errors="replace") if path.exists() else ""


def refused_requests(cluster: StackCluster) -> list[str]:
    """moto's log lines for requests IAM refused."""
    return [line for line in (Path(cluster.dir) / "logs" / "moto.log").read_text().splitlines()
            if DENIED.search(line)]


def test_config_push_with_default_options_changes_the_file_on_every_instance_of_the_layer(stack, tmp_path):
    assert stack.info is not None
    tree = tmp_path / "api"
    tree.mkdir()
    greeting = f"hello from the operator at {time.time()}\n"
    (tree / "greeting.txt").write_text(greeting)

    pushed = skynet(stack, "config", "push", "--env", ENV, "--layer", "api", str(tree), "--wait", "--json",
                    "--timeout", "120")

    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["level"] == "Layers/api" and result["store"] == "s3"
    assert [r["state"] for r in result["rollouts"]] == ["completed"]
    for instance in stack.info.instances:
        assert config_file(instance, "greeting.txt") == greeting, instance.id
    assert refused_requests(stack) == []
    for instance in stack.info.instances:
        assert not REFUSED_IN_LOG.findall(worker_log(instance)), instance.id
