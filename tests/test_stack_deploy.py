"""``skynet stack deploy`` and ``skynet agent push`` against moto's server: what new instances boot.

moto's CloudFormation creates the whole stack (launch templates with their user data resolved,
auto scaling groups with instances, the SSM parameter that pins the wheel). On an update it
re-creates only resources that ``Ref`` a changed parameter, and the pin uses the wheel parameters
inside ``Fn::Sub``: so after an update moto keeps the pin's first value, where CloudFormation
writes the new one. ``agent push`` writes the pin itself once the stack names the new wheel.
"""

from __future__ import annotations

import base64
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.cli import main as cli
from skynet_tasks.local import stack_aws
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve
from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.deploy import PHASE_TAG, deploy_stack, repo_bucket
from skynet_tasks.stacks.parameters import ParameterError
from skynet_tasks.stacks.wheel_pin import read_pin
from skynet_tasks.stacks.wheels import build_wheel, wheel_ref

pytestmark = pytest.mark.timeout(240)

TEMPLATE = Path(__file__).parent.parent / "cloudformation" / "php-nginx.yaml"
FAST = {"Delay": 1, "MaxAttempts": 30}


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(log_file=tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def aws(moto: MotoServer) -> Aws:
    return aws_for(moto.environment())


@pytest.fixture(scope="module")
def network(moto: MotoServer) -> dict[str, str]:
    """What the stack needs from the account: a VPC, public and private subnets, a hosted zone, an AMI."""
    created = stack_aws.create_network(aws_for(moto.environment()), "10.0", domain="example.com")
    return {"RepoUrl": "git@github.com:example/app.git", "DomainName": "app.example.com", **created.parameters()}


def make_wheel(folder: Path, version: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"skynet-{version}-py3-none-any.whl"
    wheel.write_bytes(content)
    return wheel


def skynet(moto: MotoServer, *args: str) -> Result:
    env = {**moto.environment(), "SKYNET_ENV": None, "SKYNET_REPO_BUCKET": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def params(values: dict[str, str]) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--param", f"{k}={v}")]


def stack_parameters(aws: Aws, name: str) -> dict[str, str]:
    stack = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def user_data(aws: Aws, template_name: str) -> str:
    ec2 = aws.client("ec2")
    versions = ec2.describe_launch_template_versions(LaunchTemplateName=template_name)["LaunchTemplateVersions"]
    latest = max(versions, key=lambda v: v["VersionNumber"])
    return base64.b64decode(latest["LaunchTemplateData"]["UserData"]).decode()


def capacities(aws: Aws, env: str) -> dict[str, tuple[int, int]]:
    groups = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"skynet-{env}-rp", f"skynet-{env}-api"])["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: (g["MinSize"], g["DesiredCapacity"]) for g in groups}


def stack_names(aws: Aws) -> set[str]:
    return {s["StackName"] for s in aws.client("cloudformation").describe_stacks()["Stacks"]}


def test_deploy_creates_the_stack_and_its_instances_boot_the_uploaded_wheel(moto, aws, network, tmp_path):
    wheel = make_wheel(tmp_path, "0.1.0", b"first wheel")
    sha = wheel_ref(wheel).sha256

    result = skynet(moto, "stack", "deploy", "--env", "alpha", *params(network), "--param", "ApiDesiredSize=2",
                    "--wheel", str(wheel))

    assert result.exit_code == 0, result.output
    assert "stack skynet-alpha created" in result.output and sha in result.output
    parameters = stack_parameters(aws, "skynet-alpha")
    key = f"agent/wheels/{sha}/skynet-0.1.0-py3-none-any.whl"
    assert parameters["SkynetWheelKey"] == key and parameters["SkynetWheelSha256"] == sha
    bucket = repo_bucket(aws.client("cloudformation"), "skynet-alpha")
    assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first wheel"
    for layer in ("rp", "api"):  # the user data names the pin; the pin names the wheel
        assert "export SKYNET_WHEEL_PARAMETER=/skynet/alpha/agent-wheel " in user_data(aws, f"skynet-alpha-{layer}")
    assert read_pin(aws.client("ssm"), "/skynet/alpha/agent-wheel") == {"key": key, "sha256": sha}
    # The stack was made at capacity 0 and raised once the wheel was there: the defaults, and the value given.
    assert capacities(aws, "alpha") == {"skynet-alpha-rp": (2, 2), "skynet-alpha-api": (2, 2)}
    tags = aws.client("cloudformation").describe_stacks(StackName="skynet-alpha")["Stacks"][0]["Tags"]
    assert {"Key": PHASE_TAG, "Value": "done"} in tags


@pytest.mark.parametrize(("change", "message"), [
    ({"Colour": "blue"}, "no parameter Colour"),
    ({"DomainName": None}, "missing required parameter DomainName"),
    ({"CreateEndpointsTable": "maybe"}, "CreateEndpointsTable: 'maybe' is not one of the AllowedValues"),
    ({"Env": "Prod_1"}, "Env: 'Prod_1' does not match its AllowedPattern"),
    ({"ApiMaxSize": "ten"}, "ApiMaxSize: 'ten' is not a Number"),
    ({"SkynetWheelSha256": "0" * 64}, "SkynetWheelSha256 is set by the deploy from the wheel"),
])
def test_a_bad_parameter_is_refused_before_anything_is_created(moto, aws, network, tmp_path, change, message):
    values = {k: v for k, v in {**network, "Env": "beta", **change}.items() if v is not None}
    wheel = make_wheel(tmp_path, "0.1.0", b"wheel")
    buckets_before = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}

    with pytest.raises(ParameterError) as refused:
        deploy_stack(aws.client("cloudformation"), aws.s3, TEMPLATE, "skynet-beta", values, wheel, FAST)

    assert message in str(refused.value)
    assert "skynet-beta" not in stack_names(aws)
    assert {b["Name"] for b in aws.s3.list_buckets()["Buckets"]} == buckets_before


def test_a_redeploy_uploads_first_updates_the_wheel_and_keeps_every_other_value(moto, aws, network, tmp_path):
    cfn = aws.client("cloudformation")
    first = deploy_stack(cfn, aws.s3, TEMPLATE, "skynet-gamma", {**network, "Env": "gamma", "RpDesiredSize": "3",
                                                                  "RpMaxSize": "5"},
                         make_wheel(tmp_path / "1", "0.1.0", b"one"), FAST)
    before = stack_parameters(aws, "skynet-gamma")
    objects_before = aws.s3.list_objects_v2(Bucket=first.bucket).get("KeyCount")

    refused = skynet(moto, "stack", "deploy", "--env", "gamma", "--param", "RpDesiredSize=many",
                     "--wheel", str(make_wheel(tmp_path / "2", "0.1.1", b"two")))
    second = deploy_stack(cfn, aws.s3, TEMPLATE, "skynet-gamma", {"Env": "gamma"},
                          make_wheel(tmp_path / "3", "0.1.1", b"three"), FAST)

    assert refused.exit_code == 1 and "RpDesiredSize: 'many' is not a Number" in refused.output
    assert first.action == "created" and second.action == "updated"
    after = stack_parameters(aws, "skynet-gamma")
    assert after["SkynetWheelKey"] == second.wheel.key != before["SkynetWheelKey"]
    assert after["SkynetWheelSha256"] == wheel_ref(tmp_path / "3" / "skynet-0.1.1-py3-none-any.whl").sha256
    unchanged = {k: v for k, v in before.items() if not k.startswith("SkynetWheel")}
    assert {k: after[k] for k in unchanged} == unchanged
    assert capacities(aws, "gamma")["skynet-gamma-rp"] == (2, 3)
    # The refused deploy uploaded nothing; the second added exactly its wheel.
    assert aws.s3.list_objects_v2(Bucket=first.bucket)["KeyCount"] == objects_before + 1
    assert aws.s3.get_object(Bucket=first.bucket, Key=second.wheel.key)["Body"].read() == b"three"


def test_a_deploy_stopped_between_its_phases_gets_its_capacities_back(moto, aws, network, tmp_path):
    """As if the wheel upload had failed: the stack exists at capacity 0 and is tagged capacity-pending."""
    cfn = aws.client("cloudformation")
    wheel = make_wheel(tmp_path, "0.1.0", b"zero")
    pending = {**network, "Env": "delta", **wheel_ref(wheel).parameters(),
               **{k: "0" for k in ("RpMinSize", "RpDesiredSize", "ApiMinSize", "ApiDesiredSize")}}
    cfn.create_stack(StackName="skynet-delta", TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in pending.items()],
                     Tags=[{"Key": PHASE_TAG, "Value": "capacity-pending"}])
    assert capacities(aws, "delta") == {"skynet-delta-rp": (0, 0), "skynet-delta-api": (0, 0)}

    result = deploy_stack(cfn, aws.s3, TEMPLATE, "skynet-delta", {"Env": "delta"}, wheel, FAST)

    assert result.action == "updated"
    assert capacities(aws, "delta") == {"skynet-delta-rp": (2, 2), "skynet-delta-api": (2, 3)}
    assert aws.s3.get_object(Bucket=result.bucket, Key=result.wheel.key)["Body"].read() == b"zero"


def test_agent_push_makes_new_instances_of_the_stack_boot_the_pushed_wheel(moto, aws, network, tmp_path):
    cfn = aws.client("cloudformation")
    deployed = deploy_stack(cfn, aws.s3, TEMPLATE, "skynet-eps", {**network, "Env": "eps"},
                            make_wheel(tmp_path / "1", "0.1.0", b"deployed"), FAST)
    pushed = make_wheel(tmp_path / "2", "0.1.1", b"pushed")
    sha = wheel_ref(pushed).sha256

    result = skynet(moto, "agent", "push", "--env", "eps", str(pushed))

    assert result.exit_code == 0, result.output
    key = f"agent/wheels/{sha}/skynet-0.1.1-py3-none-any.whl"
    assert f"stack skynet-eps: new instances boot {key} (pinned in /skynet/eps/agent-wheel)" in result.output
    assert read_pin(aws.client("ssm"), "/skynet/eps/agent-wheel") == {"key": key, "sha256": sha}
    parameters = stack_parameters(aws, "skynet-eps")
    assert parameters["SkynetWheelKey"] == key and parameters["SkynetWheelSha256"] == sha
    assert parameters["VpcId"] == network["VpcId"]  # everything else kept its value
    # Running instances update from the stack's bucket too (the rollout's manifest), not skynet-<env>-repo.
    assert aws.s3.get_object(Bucket=deployed.bucket, Key=key)["Body"].read() == b"pushed"
    assert aws.s3.head_object(Bucket=deployed.bucket, Key="agent/0.1.1/manifest.json")


def test_agent_push_without_a_stack_says_so_and_only_publishes(moto, aws, tmp_path):
    bootstrap_env(aws, resolve(aws, "zeta"), ["zeta-api"])
    pushed = make_wheel(tmp_path, "0.1.1", b"pushed")

    result = skynet(moto, "agent", "push", "--env", "zeta", str(pushed))
    named = skynet(moto, "agent", "push", "--env", "zeta", "--stack-name", "skynet-nope", str(pushed))

    assert result.exit_code == 0, result.output
    assert "no stack skynet-zeta: instances that boot later keep their stack's wheel" in result.output
    assert aws.s3.head_object(Bucket=resolve(aws, "zeta").repo_bucket, Key="agent/0.1.1/manifest.json")
    assert named.exit_code == 1 and "no stack skynet-nope" in named.output


def test_both_launch_templates_name_the_wheel_pin_and_not_the_wheel():
    text = TEMPLATE.read_text()
    assert text.count("export SKYNET_WHEEL_PARAMETER=${AgentWheelParameter} ") == 2
    # The wheel's key and sha256 are read at boot: a launch template that holds them holds them stale.
    assert "SKYNET_WHEEL_KEY" not in text and "SKYNET_WHEEL_SHA256" not in text



def test_without_wheel_the_deploy_builds_one_from_the_checkout_and_refuses_without_one(tmp_path):
    built = build_wheel(tmp_path)
    with pytest.raises(StackError) as refused:
        build_wheel(tmp_path, project=tmp_path)

    assert built.parent == tmp_path and wheel_ref(built).filename.startswith("skynet-")
    with zipfile.ZipFile(built) as archive:
        assert "workers/boot.py" in archive.namelist()
    assert "not running from a source checkout, pass a wheel with --wheel" in str(refused.value)
