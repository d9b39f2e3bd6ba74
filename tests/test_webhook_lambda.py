"""The webhook receiver as the stack runs it on AWS: its Lambda code, under its own role, against moto's server.

moto's server enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``). The operator deploys the stack with
``skynet stack deploy``'s own function, which builds the receiver's zip and uploads it. Then the
zip is run as Lambda's Python runtime would run it: its files first on the path, the runtime's boto3
beside them and nothing else installed, the function's environment as the stack configured it, and
the credentials of the function's role (assumed by ``aws-service-lambda``, moto_main's stand-in for
the Lambda service). Each request is a function URL event (payload format 2.0) on the runner's
stdin, one warm container answering them all (the runtime's stand-in is ``lambdakit``); a call the
role's policy does not allow fails the test. How the zip is built is ``test_webhook_lambda_zip.py``'s.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from lambdakit import RUNNER, runtime_packages, url_event

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.ledger import Ledger
from skynet_tasks.local import stack_aws
from skynet_tasks.local.moto_main import SERVICE_USER_PREFIX
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import BUILD_REQUEST_TASK
from skynet_tasks.stacks.cfn import load_template
from skynet_tasks.stacks.deploy import deploy_stack
from skynet_tasks.stacks.wheels import build_wheel
from skynet_tasks.webhook.local import push_payload
from skynet_tasks.webhook.signature import sign

pytestmark = pytest.mark.timeout(240)

TEMPLATE = Path(__file__).parent.parent / "cloudformation" / "php-nginx.yaml"
SHA, BEFORE = "5" * 40, "4" * 40
FAST = {"Delay": 1, "MaxAttempts": 60}


def celery_body(sqs_body: str) -> tuple[str, list[Any]]:
    envelope = json.loads(base64.b64decode(sqs_body))
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return envelope["headers"]["task"], json.loads(body)


@dataclass
class Deployed:
    operator: Aws
    outputs: dict[str, str]
    secret: bytes
    code_dir: Path
    runtime_dir: Path
    function_env: dict[str, str]
    role_env: dict[str, str]
    endpoint: str

    def maintenance_queue(self) -> str:
        return str(self.operator.sqs.get_queue_url(QueueName=names.maintenance_queue("prod", "prod-api"))["QueueUrl"])

    def build_requests(self) -> list[dict[str, Any]]:
        """The build requests waiting on the api group's maintenance queue (taken off it)."""
        found, url = [], self.maintenance_queue()
        while messages := self.operator.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                            WaitTimeSeconds=0).get("Messages", []):
            for message in messages:
                task, body = celery_body(message["Body"])
                assert task == BUILD_REQUEST_TASK
                found.append(body[1]["request"])
                self.operator.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def invoke(self, *events: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Run the function's code on ``events`` in one container; its answers and its log (stderr)."""
        environment = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1",
                       "AWS_DEFAULT_REGION": "us-east-1", **self.function_env, **self.role_env}
        result = subprocess.run([sys.executable, "-S", "-c", RUNNER, str(self.code_dir), str(self.runtime_dir)],
                                input="".join(json.dumps(e) + "\n" for e in events), env=environment,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def function_environment(parameters: dict[str, str], outputs: dict[str, str]) -> dict[str, str]:
    """The function's environment as the template sets it, with the stack's values.

    Read from the template: moto 5.2's server refuses every Lambda API call with
    SignatureDoesNotMatch once it enforces IAM. test_cloudformation_moto checks, on a moto that does not
    enforce IAM, that the function moto created has exactly this environment.
    """
    variables = load_template(TEMPLATE)["Resources"]["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    refs = {**parameters, "WebhookSecret": outputs["WebhookSecretArn"]}
    resolved = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value:
            value = refs[value["Ref"]]
        elif isinstance(value, dict) and "Fn::Sub" in value:
            value = re.sub(r"\$\{(\w+)\}", lambda match: refs[match.group(1)], value["Fn::Sub"])
        resolved[name] = str(value)
    return resolved


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    scratch = tmp_path_factory.mktemp("webhook-lambda")
    server = MotoServer.start(log_file=scratch / "moto.log",
                              extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": str(stack_aws.UNAUTHENTICATED_REQUESTS)})
    try:
        operator = aws_for(stack_aws.create_operator(server.environment()))
        lambda_service = stack_aws.user_with_key(operator, f"{SERVICE_USER_PREFIX}lambda", stack_aws.ASSUME_ONLY)
        network = stack_aws.create_network(operator, "10.9")
        certificate = operator.client("acm").request_certificate(DomainName="app.example.com")["CertificateArn"]
        cfn = operator.client("cloudformation")
        deploy_stack(cfn, operator.s3, TEMPLATE, "skynet-prod", {
            "Env": "prod", "RepoUrl": "git@github.com:example/app.git", "Branch": "main",
            "GitHubRepository": "example/app", "DomainName": "app.example.com", "CertificateArn": certificate,
            "HostedZoneId": network.hosted_zone_id, "VpcId": network.vpc_id,
            "PublicSubnets": ",".join(network.public_subnets), "PrivateSubnets": ",".join(network.private_subnets),
            "ImageId": network.image_id, "RpMinSize": "0", "RpDesiredSize": "0", "ApiMinSize": "0",
            "ApiDesiredSize": "0"}, build_wheel(scratch), FAST)
        stack = cfn.describe_stacks(StackName="skynet-prod")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        # What docs/aws.md tells the operator to run for GitHub's hook form.
        secret = operator.client("secretsmanager").get_secret_value(
            SecretId=outputs["WebhookSecretArn"])["SecretString"].encode()
        code = scratch / "code.zip"
        operator.s3.download_file(outputs["RepoBucketName"], parameters["WebhookCodeKey"], str(code))
        with zipfile.ZipFile(code) as archive:
            archive.extractall(scratch / "task")
        role_arn = operator.client("iam").get_role(RoleName="skynet-prod-webhook")["Role"]["Arn"]
        role = aws_for({**server.environment(), **lambda_service}).client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName="skynet-prod-webhook")["Credentials"]
        # An instance of the api layer registered the group's repository (the receiver builds that one).
        Ledger(operator.dynamodb, names.state_table("prod")).ensure_group("prod-api", "git@github.com:example/app.git",
                                                                          "main")
        yield Deployed(operator, outputs, secret, scratch / "task", runtime_packages(scratch / "runtime"),
                       function_environment(parameters, outputs),
                       {"AWS_ACCESS_KEY_ID": role["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
                        "AWS_SESSION_TOKEN": role["SessionToken"]}, server.endpoint)
    finally:
        server.stop()


def signed(secret: bytes, event: str, payload: dict[str, Any], delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(secret, body)}


def test_the_function_is_configured_from_the_stack_and_its_secret_is_in_secrets_manager(deployed):
    env = deployed.function_env

    assert deployed.outputs["WebhookUrl"].startswith("https://") and ".lambda-url." in deployed.outputs["WebhookUrl"]
    assert env["SKYNET_WEBHOOK_SECRET_ARN"] == deployed.outputs["WebhookSecretArn"]
    assert "SKYNET_WEBHOOK_SECRET" not in env  # the value itself is nowhere in the function's configuration
    assert json.loads(env["SKYNET_WEBHOOK_ROUTES"]) == {"routes": [
        {"repo": "example/app", "branch": "main", "env": "prod", "layer": "api"}]}
    assert len(deployed.secret) == 40


def test_a_signed_push_enqueues_the_build_a_forged_one_is_refused_and_a_ping_answers(deployed):
    push, push_headers = signed(deployed.secret, "push", push_payload("app", "main", BEFORE, SHA, owner="example"),
                                "delivery-push-1")
    forged, forged_headers = signed(b"not-the-secret", "push",
                                    push_payload("app", "main", BEFORE, "6" * 40, owner="example"), "delivery-forged")
    ping, ping_headers = signed(deployed.secret, "ping", {"zen": "Design for failure.", "hook_id": 7}, "delivery-ping")

    answers, log = deployed.invoke(url_event(push, push_headers), url_event(forged, forged_headers),
                                   url_event(ping, ping_headers, base64_body=True))

    pushed, refused, pong = ({"status": a["statusCode"], **json.loads(a["body"])} for a in answers)
    assert pushed["status"] == 202 and pushed["release"] == SHA, pushed
    assert [b["group"] for b in pushed["builds"]] == ["prod-api"]
    assert refused == {"status": 401, "error": "missing or wrong X-Hub-Signature-256"}
    assert pong == {"status": 200, "pong": True, "hook_id": 7}
    [request] = deployed.build_requests()  # the forged push enqueued nothing
    assert request["sha"] == SHA and request["group"] == "prod-api" and request["source"] == "webhook"
    assert request["repo"] == "git@github.com:example/app.git"
    assert deployed.secret.decode() not in log


def test_a_replayed_push_under_a_fresh_delivery_id_starts_nothing_under_the_functions_role(deployed):
    # Given a push the function received (its claim written under the function's own role)
    payload = push_payload("app", "main", BEFORE, "7" * 40, owner="example")
    first = signed(deployed.secret, "push", payload, "delivery-original")
    replayed = signed(deployed.secret, "push", payload, "delivery-replayed")

    # When the same signed body comes again with a delivery id never seen
    answers, _ = deployed.invoke(url_event(*first), url_event(*replayed))

    # Then the replay is accepted, says so, and only the first enqueued a build
    original, replay = ({"status": a["statusCode"], **json.loads(a["body"])} for a in answers)
    assert original["status"] == 202 and len(original["builds"]) == 1, original
    assert replay["status"] == 202 and replay["duplicate"] is True and "already received" in replay["ignored"]
    assert [request["sha"] for request in deployed.build_requests()] == ["7" * 40]


def test_the_functions_role_is_refused_what_its_policy_does_not_grant(deployed):
    session = boto3.session.Session(aws_access_key_id=deployed.role_env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=deployed.role_env["AWS_SECRET_ACCESS_KEY"],
                                    aws_session_token=deployed.role_env["AWS_SESSION_TOKEN"], region_name="us-east-1")
    role = Aws(session, endpoint_url=deployed.endpoint)
    config_bucket = deployed.outputs["ConfigBucketName"]

    with pytest.raises(ClientError) as other_table:
        role.dynamodb.get_item(TableName=names.config_table("prod"), Key={"scope": {"S": "x"}, "path": {"S": "y"}})
    with pytest.raises(ClientError) as bucket:
        role.s3.get_object(Bucket=config_bucket, Key="Global/app.env")
    with pytest.raises(ClientError) as rp_queue:
        role.sqs.send_message(QueueUrl=role.sqs.get_queue_url(
            QueueName=names.maintenance_queue("prod", "prod-rp"))["QueueUrl"], MessageBody="x", MessageGroupId="g",
            MessageDeduplicationId="d")

    for refused in (other_table, bucket, rp_queue):
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "AccessDenied" in str(refused.value), refused.value


def test_a_secret_the_role_cannot_read_stops_the_function_before_it_answers(deployed):
    other = deployed.operator.client("secretsmanager").create_secret(Name="someone-elses", SecretString="x" * 40)
    environment = {**deployed.function_env, "SKYNET_WEBHOOK_SECRET_ARN": other["ARN"]}
    body, headers = signed(b"x" * 40, "ping", {"hook_id": 1}, "delivery-denied")

    result = subprocess.run([sys.executable, "-S", "-c", RUNNER, str(deployed.code_dir), str(deployed.runtime_dir)],
                            input=json.dumps(url_event(body, headers)) + "\n", capture_output=True, text=True,
                            timeout=120, check=False,
                            env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": deployed.endpoint,
                                 "AWS_DEFAULT_REGION": "us-east-1", **environment, **deployed.role_env})

    assert result.returncode != 0 and result.stdout == ""
    # moto answers the refusal with the status as its code (403); AWS with AccessDeniedException.
    assert f"cannot read the webhook secret {other['ARN']} from Secrets Manager" in result.stderr
    assert "x" * 40 not in result.stderr


def test_a_routes_rollout_policy_is_on_the_rollouts_record_and_a_bad_one_stops_the_function(deployed):
    # Given the function's routing table giving prod's rollouts a manual canary, a timeout and a window
    route = {"repo": "example/app", "branch": "main", "env": "prod", "layer": "api", "rollout": {
        "canary": "manual", "promote_timeout": "2h", "windows": ["mon-fri 09:00-17:00 Europe/Paris"]}}
    routed = replace(deployed, function_env={**deployed.function_env,
                                             "SKYNET_WEBHOOK_ROUTES": json.dumps({"routes": [route]})})
    body, headers = signed(deployed.secret, "push", push_payload("app", "main", BEFORE, "8" * 40, owner="example"),
                           "delivery-policy")

    # When a push comes
    [answer], _ = routed.invoke(url_event(body, headers))

    # Then the rollout's record carries the route's policy, as skynet deploy's options would
    pushed = json.loads(answer["body"])
    assert answer["statusCode"] == 202, pushed
    [build] = pushed["builds"]
    record = Ledger(deployed.operator.dynamodb, names.state_table("prod")).rollout_item(build["rollout_id"]) or {}
    assert (record["promotion"], record["promote_timeout"], record["windows"]) == (
        "manual", 7200, ["mon,tue,wed,thu,fri 09:00:00-17:00:00 Europe/Paris"])
    assert [request["sha"] for request in deployed.build_requests()] == ["8" * 40]

    # And a routing table with a bad policy stops the function before it answers: nothing is started
    route["rollout"] = {"canary": "sometimes"}
    broken = replace(deployed, function_env={**deployed.function_env,
                                             "SKYNET_WEBHOOK_ROUTES": json.dumps({"routes": [route]})})
    body, headers = signed(deployed.secret, "push", push_payload("app", "main", BEFORE, "9" * 40, owner="example"),
                           "delivery-bad-policy")
    with pytest.raises(AssertionError, match=r"route 1: rollout.canary: 'sometimes' is not a canary mode"):
        broken.invoke(url_event(body, headers))
    assert deployed.build_requests() == []
