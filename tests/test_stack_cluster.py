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
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from skynet_tasks import names
from skynet_tasks.local import stack_aws
from skynet_tasks.local.cluster import ClusterError
from skynet_tasks.local.stack_cluster import StackCluster
from skynet_tasks.registry import Registry

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

ENV = "local"
DENIED = re.compile(r'" 403 ')


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    cluster = StackCluster(tmp_path_factory.mktemp("stack"), env=ENV)
    cluster.up(api=1, rp=0)
    yield cluster
    cluster.down()


def operator_env(cluster: StackCluster) -> dict[str, str]:
    return {**os.environ, **cluster.require_state().operator}


def skynet(cluster: StackCluster, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], env=operator_env(cluster),
                          capture_output=True, text=True, timeout=timeout, check=False)


def in_namespace(cluster: StackCluster, instance: int, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python inside an instance's network namespace, as a process on that instance would (no keys given)."""
    environment = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": cluster.require_info().aws_endpoint,
                   "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    namespace = cluster.require_state().instances[instance].namespace
    return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_api_instance_boots_from_its_user_data_and_registers_at_its_private_address(stack):
    (instance,) = stack.require_state().instances
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
    assert len(pids.stdout.split()) >= 3  # the metadata stand-in, the work worker, the conductor worker


def test_a_push_is_built_on_the_instance_under_its_role_and_served_at_its_address(stack):
    (instance,) = stack.require_state().instances
    head = subprocess.run(["git", "-C", stack.require_info().app_repo, "rev-parse", "main"], capture_output=True,
                          text=True, check=True).stdout.strip()

    deployed = skynet(stack, "deploy", "--env", ENV, "--ref", "main", "--wait", "--timeout", "180")
    answer = json.loads(urllib.request.urlopen(f"http://{instance.address}:8000/", timeout=10).read())

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert answer["instance"] == instance.id and answer["release"] == head


def test_no_request_of_the_cluster_was_refused_by_iam(stack):
    moto_log = (Path(stack.dir) / "logs" / "moto.log").read_text()

    assert not [line for line in moto_log.splitlines() if DENIED.search(line)]


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

    ran = in_namespace(stack, 0, code)

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


def test_an_instance_without_identity_refuses_to_start_and_registers_nothing(stack, tmp_path):
    (booted,) = stack.require_state().instances[:1]
    user_data = (Path(booted.disk) / "user-data").read_text()
    exported = dict(re.findall(r"(SKYNET_[A-Z_]+)='?([^' \n]+)'?", user_data))
    namespace = f"{stack.vpc.name}-no-imds"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        def boot(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m", "workers.boot"],
                                  env={"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       **environment}, capture_output=True, text=True, timeout=60, check=False)

        no_metadata = boot(exported)
        no_user_data = boot({})
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    registry = Registry(stack.operator_aws().dynamodb, names.endpoints_table(ENV))

    assert no_metadata.returncode == 1 and "no instance identity" in no_metadata.stderr
    assert no_user_data.returncode == 1 and "did not export SKYNET_ENV" in no_user_data.stderr
    assert [e.instance_id for e in registry.live(ENV, None, 600)] == [booted.id]
