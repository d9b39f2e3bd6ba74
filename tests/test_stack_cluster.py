"""The stack as AWS runs it: an instance boots from its launch template's user data alone.

One cluster for the module, built by ``StackCluster`` from cloudformation/php-nginx.yaml in
moto with IAM enforced. Each instance lives in its own network namespace at the private
address moto gave it, gets its identity, tags and role credentials from its metadata
stand-in, and runs its user data unchanged. Needs root (namespaces, mounts): CI runs as root.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from clusterkit import wait_for
from stackkit import ENV, denied_requests, in_namespace, instances_of, skynet, stack_up, what_went_wrong

from skynet_tasks import names
from skynet_tasks.local import ec2_host, stack_aws
from skynet_tasks.local.cluster_info import ClusterError
from skynet_tasks.local.stack_cluster import StackCluster, StackInstance
from skynet_tasks.registry import Registry

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

# Each instance's metadata service answers its role's credentials 1.5 s late, past botocore's default wait
# (1 s, once), as a loaded host's may: a session that got none made clients that never signed a request, and
# a pool child whose warm-up met that failed every task for its life (skynet_tasks/aws.py).
METADATA_DELAY = 1.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, agent_wheel: Path):
    with stack_up(tmp_path_factory.mktemp("stack"), api=1, rp=1, wheel=agent_wheel,
                  metadata_delay=METADATA_DELAY) as cluster:
        yield cluster


def instance_of(cluster: StackCluster, layer: str) -> StackInstance:
    (found,) = instances_of(cluster, layer)
    return found


def test_an_api_instance_boots_from_its_user_data_and_registers_at_its_private_address(stack):
    instance = instance_of(stack, "api")
    registry = Registry(stack.operator_aws().dynamodb, names.endpoints_table(ENV))
    (entry,) = [e for e in registry.live(ENV, "api", 600) if e.instance_id == instance.id]
    settings_file = (Path(instance.disk) / "etc-upper" / "skynet" / "env").read_text()
    ec2 = stack.operator_aws().client("ec2")
    described = ec2.describe_instances(InstanceIds=[instance.id])["Reservations"][0]["Instances"][0]

    assert entry.address == instance.address == described["PrivateIpAddress"]
    assert ipaddress.ip_address(instance.address) in ipaddress.ip_network(stack.vpc.cidr)
    # What the worker reads is what the user data exported: no identity, no keys.
    assert "SKYNET_INSTANCE_ID" not in settings_file and "AWS_ACCESS_KEY_ID" not in settings_file
    assert f"SKYNET_REPO_BUCKET={stack.require_state().outputs['RepoBucketName']}" in settings_file
    # Its processes run inside its namespace, none outside.
    pids = subprocess.run(["ip", "netns", "pids", instance.namespace], capture_output=True, text=True, check=True)
    assert len(pids.stdout.split()) >= 2  # the metadata stand-in and the worker (the conductor runs in it)


def test_a_push_is_built_on_the_instance_under_its_role_and_served_at_its_address(stack):
    instance, proxy = instance_of(stack, "api"), instance_of(stack, "rp")
    head = subprocess.run(["git", "-C", stack.require_info().app_repo, "rev-parse", "main"], capture_output=True,
                          text=True, check=True).stdout.strip()

    deployed = skynet(stack, "deploy", "--env", ENV, "--ref", "main", "--wait", "--timeout", "180")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + what_went_wrong(Path(stack.dir), last=30)
    # The layer's one instance was drained for its update; the rollout completes at its report's decision and
    # the proxy, told after it, routes to it again a moment later (0.2 s in a CI run that asked in between).
    answer = wait_for(lambda: served(f"http://{proxy.address}:8000/api/local/"), 10,
                      "the proxy to route to the updated instance again")

    assert answer["instance"] == instance.id and answer["release"] == head


def served(url: str) -> dict | None:
    """The app's answer through the proxy; None while the proxy has no instance to route to (nginx's 503)."""
    try:
        return dict(json.loads(urllib.request.urlopen(url, timeout=10).read()))
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return None
        raise


def test_the_security_groups_admit_only_what_the_template_allows(stack):
    api, proxy = instance_of(stack, "api"), instance_of(stack, "rp")
    probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 8000), timeout=2).close()\n"
             "    print('open')\nexcept OSError:\n    print('closed')\n")

    def reach(source: StackInstance, target: StackInstance) -> str:
        ran = subprocess.run(["ip", "netns", "exec", source.namespace, sys.executable, "-c", probe, target.address],
                             capture_output=True, text=True, timeout=30, check=True)
        return ran.stdout.strip()

    # The load balancer (here: the gateway) reaches the proxy, the proxy reaches the API layer...
    assert urllib.request.urlopen(f"http://{proxy.address}:8000/health", timeout=10).status == 200
    # (the app may be restarting after the push before: a closed port there is the app's, not the firewall's)
    wait_for(lambda: reach(proxy, api) == "open", 30, "the proxy to reach the API instance's app")
    # ...and nothing else reaches the API layer, nor the proxy but from the load balancer.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{api.address}:8000/", timeout=2)
    assert reach(api, proxy) == "closed"


def test_no_request_of_the_cluster_was_refused_by_iam(stack):
    assert denied_requests(stack) == []


def test_the_instance_role_is_refused_what_its_policy_lacks(stack):
    attempts = {
        "delete the state table": "c('dynamodb').delete_table(TableName='skynet-local-state')",
        "list IAM users": "c('iam').list_users()",
        "write another env's queue": "c('sqs').create_queue(QueueName='skynet-other-inst-x')",
        "write a bucket outside the stack": "c('s3').put_object(Bucket='not-skynets', Key='k', Body=b'x')",
    }
    code = ("import boto3, json, botocore.exceptions as e\nc = boto3.client\nout = {}\n" + "".join(
        f"try:\n    {call}\n    out[{what!r}] = 'allowed'\nexcept e.ClientError as error:\n"
        f"    out[{what!r}] = error.response['Error']['Code']\n" for what, call in attempts.items())
        + "print(json.dumps(out))")

    ran = in_namespace(stack, instance_of(stack, "api"), code)

    assert ran.returncode == 0, ran.stderr
    outcomes = json.loads(ran.stdout)
    assert set(outcomes) == set(attempts)
    assert all(code in ("AccessDenied", "AccessDeniedException", "403") for code in outcomes.values()), outcomes


def test_a_wheel_that_is_not_the_pinned_one_is_not_installed_at_boot(stack):
    state = stack.require_state()
    aws = stack.operator_aws()
    cfn = aws.client("cloudformation")
    parameters = {p["ParameterKey"]: p["ParameterValue"]
                  for p in cfn.describe_stacks(StackName=state.stack)["Stacks"][0]["Parameters"]}
    bucket, key = state.outputs["RepoBucketName"], parameters["SkynetWheelKey"]
    genuine = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    aws.s3.put_object(Bucket=bucket, Key=key, Body=genuine + b"tampered")
    try:
        autoscaling = aws.client("autoscaling")
        autoscaling.set_desired_capacity(AutoScalingGroupName=f"skynet-{ENV}-api", DesiredCapacity=2)
        booted = {i.id for i in state.instances}
        (new,) = [i for i in stack_aws.stack_instances(aws, [f"skynet-{ENV}-api"]) if i.instance_id not in booted]

        with pytest.raises(ClusterError) as refused:
            stack.boot(new)
    finally:
        aws.s3.put_object(Bucket=bucket, Key=key, Body=genuine)

    disk = Path(stack.dir) / "instances" / new.instance_id
    assert "the stack pins" in str(refused.value) and "not installed" in str(refused.value)
    assert not list((disk / "venv-upper").glob("lib/python*/site-packages/skynet-*.dist-info"))
    assert not (disk / "etc-upper" / "skynet" / "env").exists()


def test_an_instance_without_identity_or_tags_refuses_to_start_and_registers_nothing(stack):
    booted = instances_of(stack, "api")[0]  # the first: the tampered wheel's instance is there too
    user_data = (Path(booted.disk) / "user-data").read_text()
    exported = dict(re.findall(r"(SKYNET_[A-Z_]+)='?([^' \n]+)'?", user_data))
    registry = Registry(stack.operator_aws().dynamodb, names.endpoints_table(ENV))
    registered = sorted(e.instance_id for e in registry.live(ENV, None, 600))
    # A host whose metadata has no tags: the launch template's InstanceMetadataTags switched off.
    untagged = stack_aws.Ec2Instance("i-0untagged", stack.vpc.cidr.replace(".0.0/16", ".9.9"), "us-east-1a", {},
                                     user_data, "arn:aws:iam::123456789012:role/none")
    bare = f"{stack.vpc.name}-no-imds"
    subprocess.run(["ip", "netns", "add", bare], check=True)
    tagless = stack.vpc.attach(untagged.instance_id, untagged.address)
    try:
        disk = Path(stack.dir) / "instances" / untagged.instance_id
        disk.mkdir(parents=True)
        ec2_host.start_metadata(untagged, disk, tagless, stack.require_info().aws_endpoint, "us-east-1",
                                stack.require_state().service_key)

        def boot(namespace: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m", "workers.boot"],
                                  env={"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       **environment}, capture_output=True, text=True, timeout=60, check=False)

        no_metadata = boot(bare, exported)
        no_user_data = boot(bare, {})
        no_tags = boot(tagless, exported)
    finally:
        subprocess.run(["ip", "netns", "del", bare], check=False)
        ec2_host.stop_namespace(tagless, Path(stack.dir) / "instances" / untagged.instance_id)
        stack.vpc.detach(untagged.instance_id)

    assert no_metadata.returncode == 1 and "no instance identity" in no_metadata.stderr
    assert no_user_data.returncode == 1 and "did not export SKYNET_ENV" in no_user_data.stderr
    assert no_tags.returncode == 1 and "no maintenance-group tag" in no_tags.stderr
    assert sorted(e.instance_id for e in registry.live(ENV, None, 600)) == registered


def test_without_namespaces_local_up_stack_says_so_and_exits_non_zero(tmp_path):
    # A host without iproute2 cannot make the instances' namespaces: no silent fallback to the plain cluster.
    environment = {**os.environ, "PATH": str(Path(sys.executable).parent),
                   "GIT_PYTHON_GIT_EXECUTABLE": str(shutil.which("git"))}
    ran = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "local", "up", "--stack", "--dir",
                          str(tmp_path / "cluster")], env=environment, capture_output=True, text=True, timeout=60,
                         check=False)

    assert ran.returncode == 1
    assert "needs `ip` (Debian package iproute2)" in ran.stderr
    assert not (tmp_path / "cluster" / "cluster.json").exists()
