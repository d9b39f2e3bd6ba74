"""What each layer's instance role and the operator's role may do, with IAM enforced: the stack's
policies in moto.

One stack for the module, deployed into moto's server as ``StackCluster`` deploys it (IAM
enforced once the operator exists), without booting instances: each test acts with the
credentials an instance of a layer gets, assumed exactly as the metadata stand-in assumes
them (``skynet_tasks/local/imds.py``: the EC2 service user assumes the layer's role, the
session named after the instance). What moto does not evaluate is checked on the template
instead (tests/test_cloudformation.py): conditions (the config listing's ``s3:prefix``, the
config table's ``dynamodb:LeadingKeys``) and bucket policies (TLS only).

The operator's role (``skynet-<env>-operator``) is assumed by a user allowed nothing but
``sts:AssumeRole``, and the CLI runs with that session's keys, as an operator's shell would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.ledger import Ledger
from skynet_tasks.local import stack_aws
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.local.sample_repo import create_sample_repo
from skynet_tasks.queues import INSTANCE_VISIBILITY, Queues, instance_queue

pytestmark = pytest.mark.timeout(180)

ENV = "local"
SHA = "5" * 40
RELEASE = f"sample-app/main/{SHA}"
WHEEL = f"agent/wheels/{'0' * 64}/skynet-0.1.0-py3-none-any.whl"
CONFIG = {"Global/app.json": b"{}", f"Environments/{ENV}/app.json": b"{}",
          "Layers/api/deploy-key.pem": b"-----BEGIN OPENSSH PRIVATE KEY-----", "Layers/rp/nginx.json": b"{}"}
REFUSED = ("AccessDenied", "AccessDeniedException", "403")


class Stack:
    """The deployed stack: its operator, its buckets, and instance credentials on demand."""

    def __init__(self, server: MotoServer, operator: dict[str, str], service: dict[str, str],
                 outputs: dict[str, str]) -> None:
        self.server, self.operator, self.service, self.outputs = server, operator, service, outputs
        self.config_bucket, self.repo_bucket = outputs["ConfigBucketName"], outputs["RepoBucketName"]
        self.person: dict[str, str] = {}  # keys of a user who may only assume a role

    def instance(self, layer: str, instance_id: str) -> boto3.session.Session:
        """A session with the credentials an instance of ``layer`` gets from its metadata endpoint."""
        return self.assumed(f"skynet-{ENV}-{layer}", self.service, instance_id)

    def assumed(self, role_name: str, keys: dict[str, str], session_name: str) -> boto3.session.Session:
        """A session of the role ``role_name``, assumed with the IAM user ``keys``."""
        role = aws_for(self.operator).client("iam").get_role(RoleName=role_name)["Role"]["Arn"]
        sts = boto3.client("sts", endpoint_url=self.server.endpoint, region_name="us-east-1",
                           aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])
        found = sts.assume_role(RoleArn=role, RoleSessionName=session_name, DurationSeconds=3600)["Credentials"]
        return boto3.session.Session(aws_access_key_id=found["AccessKeyId"],
                                     aws_secret_access_key=found["SecretAccessKey"],
                                     aws_session_token=found["SessionToken"], region_name="us-east-1")

    def client(self, session: boto3.session.Session, service: str) -> Any:
        return session.client(service, endpoint_url=self.server.endpoint)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("privilege")
    server = MotoServer.start(log_file=directory / "moto.log",
                              extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": str(stack_aws.UNAUTHENTICATED_REQUESTS)})
    try:
        operator = stack_aws.create_operator(server.environment())
        aws = aws_for(operator)
        service = stack_aws.user_with_key(aws, stack_aws.EC2_SERVICE, stack_aws.ASSUME_ONLY)
        person = stack_aws.user_with_key(aws, "alice", stack_aws.ASSUME_ONLY)  # may only assume a role
        network = stack_aws.create_network(aws, "10.77")
        outputs = stack_aws.deploy_stack(aws, f"skynet-{ENV}", {
            "Env": ENV, "RepoUrl": str(directory / "sample-app.git"), "DomainName": "app.local.skynet.test",
            "HostedZoneId": network.hosted_zone_id, "VpcId": network.vpc_id,
            "PublicSubnets": ",".join(network.public_subnets), "PrivateSubnets": ",".join(network.private_subnets),
            "ImageId": network.image_id, "CertificateArn": network.certificate_arn,
            "RpMinSize": "0", "RpDesiredSize": "0", "ApiMinSize": "0", "ApiDesiredSize": "0",
            "SkynetWheelKey": WHEEL, "SkynetWheelSha256": "0" * 64,
            "OperatorPrincipals": aws.client("iam").get_user(UserName="alice")["User"]["Arn"]})
        found = Stack(server, operator, service, outputs)
        found.person = person
        repo = create_sample_repo(directory)
        # What the API group's first instance records at boot: the repository and branch it deploys.
        Ledger(aws.dynamodb, names.state_table(ENV)).ensure_group(f"{ENV}-api", str(repo), "main")
        s3 = aws.s3
        for key, body in CONFIG.items():
            s3.put_object(Bucket=found.config_bucket, Key=key, Body=body)
        for key in (f"{RELEASE}/artifact.tar.gz", f"{RELEASE}/manifest.json", WHEEL):
            s3.put_object(Bucket=found.repo_bucket, Key=key, Body=b"as built")
        yield found
    finally:
        server.stop()


def outcome(call: Any, **kwargs: Any) -> str:
    """``allowed``, or the error code of the refusal."""
    try:
        call(**kwargs)
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "allowed"


def test_an_instance_creates_its_own_queue_with_its_attributes_under_its_role(stack):
    # The path workers/launch.py takes at boot: CreateQueue (dead-letter queue first) with attributes.
    sqs = stack.client(stack.instance("api", "i-0aaa"), "sqs")

    url = Queues(sqs).ensure(instance_queue(ENV, "i-0aaa"))

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(INSTANCE_VISIBILITY) and "RedrivePolicy" in attributes


@pytest.mark.parametrize("layer", ["api", "rp"])
def test_no_instance_may_set_attributes_of_or_delete_another_instances_queue(stack, layer):
    Queues(stack.client(stack.instance("api", "i-0bbb"), "sqs")).ensure(instance_queue(ENV, "i-0bbb"))
    sqs = stack.client(stack.instance(layer, f"i-0{layer}"), "sqs")
    victims = [names.instance_queue(ENV, "i-0bbb"), names.maintenance_queue(ENV, f"{ENV}-api")]

    operator = aws_for(stack.operator).sqs
    for victim in victims:
        url = operator.get_queue_url(QueueName=victim)["QueueUrl"]
        hostile_policy = ('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*", '
                          '"Resource": "*"}]}')
        assert outcome(sqs.set_queue_attributes, QueueUrl=url, Attributes={"Policy": hostile_policy}) in REFUSED
        assert outcome(sqs.set_queue_attributes, QueueUrl=url, Attributes={"VisibilityTimeout": "0"}) in REFUSED
        assert outcome(sqs.delete_queue, QueueUrl=url) in REFUSED
        assert operator.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
            "Attributes"]["VisibilityTimeout"] != "0"  # still there, unchanged


def test_an_instance_cannot_reach_another_envs_queues_whose_names_start_like_its_own(stack):
    # Env "local" may not reach env "localeu" (were dashes allowed, "local-eu" would match skynet-local-*).
    other = aws_for(stack.operator).sqs.create_queue(QueueName="skynet-localeu-inst-i-0ccc")["QueueUrl"]
    sqs = stack.client(stack.instance("api", "i-0aaa"), "sqs")

    assert outcome(sqs.send_message, QueueUrl=other, MessageBody="x") in REFUSED
    assert outcome(sqs.receive_message, QueueUrl=other) in REFUSED
    assert outcome(sqs.create_queue, QueueName="skynet-localeu-inst-i-0ddd") in REFUSED


def test_an_rp_instance_reads_its_own_config_but_not_the_api_layers_secrets(stack):
    s3 = stack.client(stack.instance("rp", "i-0rp1"), "s3")

    reads = {key: outcome(s3.get_object, Bucket=stack.config_bucket, Key=key) for key in CONFIG}

    assert reads == {"Global/app.json": "allowed", f"Environments/{ENV}/app.json": "allowed",
                     "Layers/api/deploy-key.pem": "AccessDenied", "Layers/rp/nginx.json": "allowed"}


def test_an_api_instance_reads_its_own_config_but_not_the_rp_layers(stack):
    s3 = stack.client(stack.instance("api", "i-0aaa"), "s3")

    reads = {key: outcome(s3.get_object, Bucket=stack.config_bucket, Key=key) for key in CONFIG}

    assert reads == {"Global/app.json": "allowed", f"Environments/{ENV}/app.json": "allowed",
                     "Layers/api/deploy-key.pem": "allowed", "Layers/rp/nginx.json": "AccessDenied"}


def test_an_rp_instance_writes_no_release_no_build_log_no_agent_and_no_config(stack):
    s3 = stack.client(stack.instance("rp", "i-0rp1"), "s3")
    repo_keys = [f"{RELEASE}/artifact.tar.gz", f"{RELEASE}/manifest.json", f"logs/builds/{RELEASE}/1-i.log",
                 WHEEL, "agent/0.2.0/manifest.json"]

    writes = {key: outcome(s3.put_object, Bucket=stack.repo_bucket, Key=key, Body=b"forged") for key in repo_keys}
    config = outcome(s3.put_object, Bucket=stack.config_bucket, Key="Layers/rp/nginx.json", Body=b"forged")
    own_log = outcome(s3.put_object, Bucket=stack.repo_bucket, Key="logs/updates/r-1/000001-i-0rp1.log", Body=b"ok")

    assert writes == dict.fromkeys(repo_keys, "AccessDenied")
    assert config == "AccessDenied"
    assert own_log == "allowed"  # what an RP instance does write: its update logs
    assert outcome(s3.get_object, Bucket=stack.repo_bucket, Key=f"{RELEASE}/artifact.tar.gz") == "AccessDenied"


def test_an_api_instance_writes_what_a_builder_writes_but_never_the_agent_nor_config(stack):
    s3 = stack.client(stack.instance("api", "i-0aaa"), "s3")
    build_keys = [f"{RELEASE}/artifact.tar.gz", f"{RELEASE}/manifest.json", f"logs/builds/{RELEASE}/1-i.log",
                  "logs/updates/r-1/000001-i-0aaa.log"]
    forbidden = [WHEEL, "agent/0.2.0/manifest.json", f"agent/lambda/{'0' * 64}/skynet-webhook.zip",
                 "agent/main/x/artifact.tar.gz"]  # matches the release pattern: the explicit deny wins

    writes = {key: outcome(s3.put_object, Bucket=stack.repo_bucket, Key=key, Body=b"built") for key in build_keys}
    refused = {key: outcome(s3.put_object, Bucket=stack.repo_bucket, Key=key, Body=b"forged") for key in forbidden}
    config = outcome(s3.put_object, Bucket=stack.config_bucket, Key="Layers/api/deploy-key.pem", Body=b"forged")

    assert writes == dict.fromkeys(build_keys, "allowed")
    assert refused == dict.fromkeys(forbidden, "AccessDenied")
    assert config == "AccessDenied"
    assert s3.get_object(Bucket=stack.repo_bucket, Key=WHEEL)["Body"].read() == b"as built"


@pytest.mark.parametrize("layer", ["api", "rp"])
def test_an_instance_reads_its_layers_config_items(stack, layer):
    # What the config sync does at boot (skynet_tasks/config/sources.py): one Query per level.
    dynamodb = stack.client(stack.instance(layer, f"i-0{layer}"), "dynamodb")

    for scope in ("Global", f"Environments/{ENV}", f"Layers/{layer}"):
        dynamodb.query(TableName=names.config_table(ENV), KeyConditionExpression="#s = :s",
                       ExpressionAttributeNames={"#s": "scope"}, ExpressionAttributeValues={":s": {"S": scope}},
                       ConsistentRead=True)


def operator_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run with the operator role's keys, as an operator's shell that assumed it would."""
    credentials = stack.assumed(f"skynet-{ENV}-operator", stack.person, "alice").get_credentials()
    own = {k: v for k, v in os.environ.items() if not k.startswith(("SKYNET_", "AWS_"))}
    env = {**own, "AWS_ENDPOINT_URL": stack.server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
           "AWS_SESSION_TOKEN": credentials.token, "SKYNET_ENV": ENV}
    return subprocess.run([sys.executable, "-m", "skynet_tasks.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_operator_role_reads_status_and_requests_a_deploy(stack):
    status = operator_cli(stack, "status", "--env", ENV)
    deployed = operator_cli(stack, "deploy", "--env", ENV, "--ref", "main", "--json")

    assert status.returncode == 0, status.stdout + status.stderr
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    started = json.loads(deployed.stdout)
    rollout = Ledger(aws_for(stack.operator).dynamodb, names.state_table(ENV)).rollout_item(started["rollout_id"])
    assert rollout and rollout["release"] == started["release"], rollout
    operator = aws_for(stack.operator).sqs
    queue = operator.get_queue_url(QueueName=names.maintenance_queue(ENV, f"{ENV}-api"))["QueueUrl"]
    waiting = operator.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(waiting["Attributes"]["ApproximateNumberOfMessages"]) >= 1  # the build request, for a builder


def test_the_operator_role_pushes_config(stack, tmp_path):
    (tmp_path / "app.json").write_text('{"from": "the operator"}')

    pushed = operator_cli(stack, "config", "push", "--env", ENV, "--layer", "api", str(tmp_path), "--no-rollout")

    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    written = aws_for(stack.operator).s3.get_object(Bucket=stack.config_bucket, Key="Layers/api/app.json")
    assert json.loads(written["Body"].read()) == {"from": "the operator"}


def test_the_operator_role_writes_no_release_no_log_and_never_the_agent(stack):
    s3 = stack.client(stack.assumed(f"skynet-{ENV}-operator", stack.person, "alice"), "s3")
    keys = [f"{RELEASE}/artifact.tar.gz", f"{RELEASE}/manifest.json", f"logs/builds/{RELEASE}/1-i.log", WHEEL]

    admin = aws_for(stack.operator).s3
    before = admin.get_object(Bucket=stack.repo_bucket, Key=f"{RELEASE}/artifact.tar.gz")["Body"].read()

    writes = {key: outcome(s3.put_object, Bucket=stack.repo_bucket, Key=key, Body=b"forged") for key in keys}
    deletes = {key: outcome(s3.delete_object, Bucket=stack.repo_bucket, Key=key) for key in keys}

    assert writes == dict.fromkeys(keys, "AccessDenied")
    assert deletes == dict.fromkeys(keys, "AccessDenied")
    assert admin.get_object(Bucket=stack.repo_bucket, Key=f"{RELEASE}/artifact.tar.gz")["Body"].read() == before
    assert outcome(s3.get_object, Bucket=stack.repo_bucket, Key=f"{RELEASE}/manifest.json") == "allowed"
