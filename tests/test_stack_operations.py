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
import time
from pathlib import Path

import pytest
from clusterkit import wait_for
from stackkit import ENV, denied_requests, in_namespace, skynet, stack_up
from test_config_cluster import build_agent_wheel

from skynet_tasks import __version__, names
from skynet_tasks.local.stack_cluster import StackInstance
from skynet_tasks.registry import Registry
from skynet_tasks.stacks.wheel_pin import read_pin

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
# How botocore words a refusal: "An error occurred (AccessDenied) when calling…", "(403) … Forbidden".
REFUSED_IN_LOG = re.compile(r"AccessDenied|not authorized|\(403\)|Forbidden")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, agent_wheel: Path):
    with stack_up(tmp_path_factory.mktemp("stack"), api=2, rp=0, wheel=agent_wheel) as cluster:
        yield cluster


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


def test_config_push_with_default_options_changes_the_file_on_every_instance_of_the_layer(stack, tmp_path):
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
    for instance in stack.require_state().instances:
        assert config_file(instance, "greeting.txt") == greeting, instance.id
    assert denied_requests(stack) == []
    for instance in stack.require_state().instances:
        assert not REFUSED_IN_LOG.findall(worker_log(instance)), instance.id


def installed_agent(instance: StackInstance) -> str | None:
    """The skynet_tasks.__version__ installed in the instance's /opt/skynet (an overlay: writes in venv-upper)."""
    found = sorted((Path(instance.disk) / "venv-upper").glob("lib/python*/site-packages/skynet_tasks/__init__.py"))
    if not found:
        return None
    match = re.search(r'^__version__ = "([^"]+)"', found[0].read_text(), flags=re.M)
    return match.group(1) if match else None


def test_an_instance_added_after_agent_push_boots_the_pushed_agent(stack, tmp_path):
    version = f"{__version__}.post7"
    wheel = build_agent_wheel(tmp_path, version)
    assert {installed_agent(i) for i in stack.require_state().instances} == {__version__}

    pushed = skynet(stack, "agent", "push", "--env", ENV, str(wheel), "--json")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    pin = read_pin(stack.operator_aws().client("ssm"), f"/skynet/{ENV}/agent-wheel")
    assert pin["key"].endswith(wheel.name) and pin["sha256"] == json.loads(pushed.stdout)["sha256"]
    (added,) = stack.scale_out("api", 1)

    assert installed_agent(added) == version
    registry = Registry(stack.operator_aws().dynamodb, names.endpoints_table(ENV))
    wait_for(lambda: [e for e in registry.live(ENV, "api", 600) if e.instance_id == added.id
                      and e.agent_version == version], 60, f"{added.id} to register with agent {version}")


def test_nothing_the_cluster_did_was_refused_by_iam(stack):
    assert denied_requests(stack) == []
    for instance in stack.require_state().instances:
        assert not REFUSED_IN_LOG.findall(worker_log(instance)), instance.id


def test_the_instance_role_reads_the_wheel_pin_and_cannot_move_it(stack):
    code = ("import boto3, json, botocore.exceptions as e\nssm = boto3.client('ssm')\nout = {}\n"
            "for what, call in [('read', lambda: ssm.get_parameter(Name='/skynet/local/agent-wheel')),\n"
            "    ('move', lambda: ssm.put_parameter(Name='/skynet/local/agent-wheel', Value='{}', Overwrite=True,"
            " Type='String')),\n"
            "    ('read another env', lambda: ssm.get_parameter(Name='/skynet/local-eu/agent-wheel'))]:\n"
            "    try:\n        call()\n        out[what] = 'allowed'\n"
            "    except e.ClientError as error:\n        out[what] = error.response['Error']['Code']\n"
            "print(json.dumps(out))")

    ran = in_namespace(stack, stack.require_state().instances[0], code)

    assert ran.returncode == 0, ran.stderr
    outcomes = json.loads(ran.stdout)
    assert outcomes.pop("read") == "allowed"
    # moto answers a refusal of a JSON-protocol service with the code 403; AWS with AccessDeniedException.
    assert set(outcomes) == {"move", "read another env"}
    assert all(code in ("AccessDeniedException", "403") for code in outcomes.values()), outcomes
