"""moto's patches (``skynet_tasks.compat.moto_*``): each upstream bug shown in the installed moto, then the fix.

A "still needed" test runs moto as it is: when it fails after an upgrade, moto fixed the bug and the
patch can go. moto runs in this process here (its classes, or its server on a thread, reached over HTTP
by boto3 as Skynet reaches it), so a patch is on only inside its test; ``tests/test_motoserver.py`` checks
the server Skynet starts.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.cloudformation import parsing
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMPolicyStatement
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.server import ThreadedMotoServer
from moto.sqs.responses import SQSResponse
from moto.ssm.responses import SimpleSystemManagerResponse
from sqs_looks import counted_looks

from skynet_tasks.compat import moto_cfn, moto_dynamodb, moto_iam, moto_sqs

pytestmark = pytest.mark.timeout(60)

ACCOUNT, REGION = "123456789012", "us-east-1"
CREDENTIALS = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextlib.contextmanager
def moto_over_http() -> Iterator[Callable[[str], Any]]:
    """moto's server on a thread of this process (its patches as the test applies them), reached over HTTP:
    gives a boto3 client of a service; moto's state is reset when it stops."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield lambda service: boto3.client(service, endpoint_url=endpoint, **CREDENTIALS)
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
        server.stop()


# IAM: a role that trusts a service

def ec2_trust() -> IAMPolicyStatement:
    return IAMPolicyStatement({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                               "Action": "sts:AssumeRole"})


def test_still_needed_moto_fails_on_a_trust_policy_that_names_only_a_service():
    assert not moto_iam.SERVICE_PRINCIPALS.installed
    with pytest.raises(TypeError):
        ec2_trust()._check_principal(f"arn:aws:iam::{ACCOUNT}:user/aws-service-ec2")


def test_a_service_trust_policy_trusts_that_services_stand_in_and_no_one_else():
    with moto_iam.SERVICE_PRINCIPALS.applied():
        assert ec2_trust()._check_principal(f"arn:aws:iam::{ACCOUNT}:user/aws-service-ec2")
        assert not ec2_trust()._check_principal(f"arn:aws:iam::{ACCOUNT}:user/aws-service-lambda")
        assert not ec2_trust()._check_principal(f"arn:aws:iam::{ACCOUNT}:user/operator")


# IAM: the resource a request is authorized on

def request_to(response_class: type, action: str, params: dict) -> object:
    """A moto response handler for one request, without HTTP: what its authorization reads."""
    handler = response_class.__new__(response_class)
    handler.region, handler.current_account = REGION, ACCOUNT
    handler._get_action = lambda: action
    handler._get_param = lambda name, default=None: params.get(name, default)
    handler.body = params
    return handler


def dynamodb_authorizations(action: str, body: dict) -> list[tuple[str, str]]:
    handler = request_to(DynamoHandler, action, body)
    checked: list[tuple[str, str]] = []
    handler._authenticate_and_authorize_action = lambda _request, resource: checked.append(
        (handler._get_action(), resource))
    handler._authenticate_and_authorize_normal_action()
    return checked


def authorized_resource(handler: object) -> str:
    # as moto's BaseResponse.call_action decides it
    return handler._determine_resource() if hasattr(handler, "_determine_resource") else "*"


TRANSACTION = {"TransactItems": [{"Put": {"TableName": "state", "Item": {}}},
                                 {"ConditionCheck": {"TableName": "tickets", "Key": {}}}]}
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"
PARAMETER = {"Name": "/skynet/prod/key"}


def test_still_needed_moto_authorizes_dynamodb_ssm_and_secrets_on_any_resource():
    assert not moto_iam.RESOURCE_AUTHORIZATION.installed and not moto_iam.SSM_RESOURCES.installed
    assert dynamodb_authorizations("PutItem", {"TableName": "state"}) == [("PutItem", "*")]
    assert dynamodb_authorizations("TransactWriteItems", TRANSACTION) == [("TransactWriteItems", "*")]
    assert authorized_resource(request_to(SimpleSystemManagerResponse, "GetParameter", PARAMETER)) == "*"
    assert authorized_resource(request_to(SecretsManagerResponse, "GetSecretValue", {"SecretId": "s"})) == "*"


def test_requests_are_authorized_on_the_resource_arns_aws_uses():
    with moto_iam.RESOURCE_AUTHORIZATION.applied(), moto_iam.SSM_RESOURCES.applied():
        assert dynamodb_authorizations("PutItem", {"TableName": "state"}) == [("PutItem", f"{TABLE}/state")]
        assert dynamodb_authorizations("Query", {"TableName": "state", "IndexName": "by-group"}) == [
            ("Query", f"{TABLE}/state/index/by-group")]
        assert dynamodb_authorizations("TransactWriteItems", TRANSACTION) == [
            ("PutItem", f"{TABLE}/state"), ("ConditionCheckItem", f"{TABLE}/tickets")]
        assert authorized_resource(request_to(SimpleSystemManagerResponse, "GetParameter", PARAMETER)) == \
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/skynet/prod/key"


def sqs_authorized_action(action: str) -> str:
    handler = request_to(SQSResponse, action, {})
    checked: list[str] = []
    handler._authenticate_and_authorize_action = lambda _request, _resource: checked.append(handler._get_action())
    handler._authenticate_and_authorize_normal_action("*")
    (only,) = checked
    assert handler._get_action() == action  # the request's own action, once authorized
    return only


def test_still_needed_moto_checks_an_sqs_batch_as_an_action_iam_does_not_have():
    assert not moto_iam.RESOURCE_AUTHORIZATION.installed
    assert sqs_authorized_action("DeleteMessageBatch") == "DeleteMessageBatch"


def test_an_sqs_batch_is_authorized_by_its_single_action_as_on_aws():
    with moto_iam.RESOURCE_AUTHORIZATION.applied():
        assert sqs_authorized_action("DeleteMessageBatch") == "DeleteMessage"
        assert sqs_authorized_action("SendMessageBatch") == "SendMessage"
        assert sqs_authorized_action("ChangeMessageVisibilityBatch") == "ChangeMessageVisibility"
        assert sqs_authorized_action("ReceiveMessage") == "ReceiveMessage"


# CloudFormation: AWS::Lambda::Url and AWS::SecretsManager::Secret

MISSING_TYPES = ("AWS::Lambda::Url", "AWS::SecretsManager::Secret")
SECRET_STACK = json.dumps({"Resources": {"Key": {"Type": "AWS::SecretsManager::Secret", "Properties": {
    "Name": "skynet-key", "GenerateSecretString": {"PasswordLength": "24", "ExcludePunctuation": "true"}}}},
    "Outputs": {"KeyArn": {"Value": {"Ref": "Key"}}}})


def test_still_needed_moto_has_no_cloudformation_model_for_function_urls_or_secrets():
    assert not moto_cfn.PATCH.installed
    assert [kind for kind in MISSING_TYPES if kind in parsing.get_model_map()] == []


def test_a_stack_creates_a_generated_secret_and_refers_to_it_by_arn():
    with moto_cfn.PATCH.applied(), moto_over_http() as client:
        client("cloudformation").create_stack(StackName="s", TemplateBody=SECRET_STACK)
        (stack,) = client("cloudformation").describe_stacks(StackName="s")["Stacks"]
        secret = client("secretsmanager").get_secret_value(SecretId="skynet-key")
    assert stack["Outputs"][0]["OutputValue"] == secret["ARN"]
    assert len(secret["SecretString"]) == 24 and secret["SecretString"].isalnum()
    assert [kind for kind in MISSING_TYPES if kind in parsing.get_model_map()] == []  # gone once uninstalled


# DynamoDB: what a transaction copies to roll back

def tables_copied_by_a_transaction(monkeypatch) -> int:
    copies = []
    monkeypatch.setattr(Table, "__deepcopy__", lambda table, memo: copies.append(table) or table, raising=False)
    with moto_over_http() as client:
        db = client("dynamodb")
        db.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        db.transact_write_items(TransactItems=[
            {"Put": {"TableName": "state", "Item": {"pk": {"S": name}}}} for name in ("a", "b")])
        assert db.get_item(TableName="state", Key={"pk": {"S": "b"}})["Item"] == {"pk": {"S": "b"}}
    return len(copies)


def test_still_needed_moto_copies_the_whole_table_for_each_item_of_a_transaction(monkeypatch):
    assert not moto_dynamodb.PATCH.installed
    assert tables_copied_by_a_transaction(monkeypatch) >= 2


def test_a_transaction_copies_only_the_items_it_names(monkeypatch):
    with moto_dynamodb.PATCH.applied():
        assert tables_copied_by_a_transaction(monkeypatch) == 0


# SQS: long polls on a FIFO queue

@pytest.fixture
def sqs():
    with moto_over_http() as client:
        yield client("sqs")


def fifo_queue(client, name: str) -> str:
    return client.create_queue(QueueName=f"{name}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "5"})["QueueUrl"]


def looks_of_a_long_poll_behind_a_group_in_flight(client) -> int:
    """How many times a 1 s long poll looks at the queue's messages while its only group is in flight.

    Counted rather than timed: a spinning poll looks thousands of times whatever CPU the machine
    spares it, a waiting one about once per ``RECHECK``.
    """
    url = fifo_queue(client, f"held-{time.monotonic_ns()}")
    for n in range(2):
        client.send_message(QueueUrl=url, MessageBody=f"m{n}", MessageGroupId="g")
    assert len(client.receive_message(QueueUrl=url)["Messages"]) == 1  # the group is now in flight
    with counted_looks() as looks:
        assert "Messages" not in client.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    return looks[0]


def test_still_needed_moto_spins_a_core_on_a_long_poll_behind_a_group_in_flight(sqs):
    assert not moto_sqs.PATCH.installed
    assert looks_of_a_long_poll_behind_a_group_in_flight(sqs) > 1000


def test_a_long_poll_behind_a_group_in_flight_waits_idle(sqs):
    with moto_sqs.PATCH.applied():
        assert looks_of_a_long_poll_behind_a_group_in_flight(sqs) < 100


def consumers_of_a_group(client) -> list[str]:
    """Two long polls wait on an empty FIFO queue; two messages of one group arrive: who got what."""
    url = fifo_queue(client, f"exclusive-{time.monotonic_ns()}")
    got: list[str] = []
    pollers = [threading.Thread(target=lambda: got.extend(
        m["Body"] for m in client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])))
        for _ in range(2)]
    for poller in pollers:
        poller.start()
    time.sleep(0.2)
    client.send_message(QueueUrl=url, MessageBody="m1", MessageGroupId="g")
    time.sleep(0.2)
    client.send_message(QueueUrl=url, MessageBody="m2", MessageGroupId="g")
    for poller in pollers:
        poller.join(5)
    return sorted(got)


def test_still_needed_moto_hands_a_group_in_flight_to_a_second_long_poll(sqs):
    assert not moto_sqs.PATCH.installed
    assert consumers_of_a_group(sqs) == ["m1", "m2"]  # SQS: m2 waits until m1 is deleted


def test_a_message_group_is_in_flight_at_one_consumer_at_a_time(sqs):
    with moto_sqs.PATCH.applied():
        assert consumers_of_a_group(sqs) == ["m1"]


def seconds_until_a_deleted_heads_successor_reaches_a_waiting_poll(client) -> float | None:
    url = fifo_queue(client, f"handed-on-{time.monotonic_ns()}")
    for body in ("m1", "m2"):
        client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    (head,) = client.receive_message(QueueUrl=url)["Messages"]
    later = threading.Timer(0.3, lambda: client.delete_message(QueueUrl=url, ReceiptHandle=head["ReceiptHandle"]))
    later.start()
    started = time.monotonic()
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    later.join()
    return time.monotonic() - started if [m["Body"] for m in got] == ["m2"] else None


def test_still_needed_moto_keeps_a_group_blocked_for_a_poll_that_began_while_it_was_in_flight(sqs):
    assert not moto_sqs.PATCH.installed
    assert seconds_until_a_deleted_heads_successor_reaches_a_waiting_poll(sqs) is None


def test_deleting_a_groups_head_hands_its_next_message_to_a_waiting_poll_at_once(sqs, monkeypatch):
    monkeypatch.setattr(moto_sqs, "RECHECK", 30.0)  # polls look again on their own only every 30 s: the delete wakes
    with moto_sqs.PATCH.applied():
        waited = seconds_until_a_deleted_heads_successor_reaches_a_waiting_poll(sqs)
    assert waited is not None and waited < 1.5
