"""A registration that meets a transaction in progress on the layer's item is sent again, not lost.

Every instance of a layer has its entry in the layer's one item of the endpoints table, and a reporter's
transaction writes its own entry there; DynamoDB refuses a single write to that item meanwhile with
``TransactionConflictException`` (nothing written), which botocore does not retry. A worker whose boot
registration met it exited (CI, the soak's conflict faults, 2026-12-03). DynamoDB's answers are played
by botocore's Stubber here: no emulator decides when a transaction is in progress.
"""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from skynet_tasks.dynamo import TRANSACTION_CONFLICT_ATTEMPTS
from skynet_tasks.registry import Endpoint, Registry

ENTRY = Endpoint(instance_id="api-3", group="local-api", address="10.0.0.3", port=8080, release="r1",
                 health="healthy", heartbeat=time.time())
UPDATE = {"TableName": "endpoints", "Key": {"env": {"S": "local"}, "layer": {"S": "api"}},
          "UpdateExpression": ANY, "ExpressionAttributeNames": ANY, "ExpressionAttributeValues": ANY}


def client_answering(conflicts: int, then_ok: bool) -> tuple[object, Stubber]:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stubber = Stubber(client)
    for _ in range(conflicts):
        stubber.add_client_error("update_item", service_error_code="TransactionConflictException",
                                 service_message="Transaction is ongoing for the item", expected_params=UPDATE)
    if then_ok:
        stubber.add_response("update_item", {}, expected_params=UPDATE)
    stubber.activate()
    return client, stubber


def test_a_registration_that_meets_a_transaction_in_progress_is_sent_again_and_written():
    client, stubber = client_answering(conflicts=2, then_ok=True)
    Registry(client, "endpoints").register("local", "api", ENTRY)
    stubber.assert_no_pending_responses()  # two refusals, then the write


def test_a_transaction_that_never_ends_still_fails_the_registration_after_a_few_tries():
    client, stubber = client_answering(conflicts=TRANSACTION_CONFLICT_ATTEMPTS, then_ok=False)
    with pytest.raises(ClientError, match="TransactionConflictException"):
        Registry(client, "endpoints").register("local", "api", ENTRY)
    stubber.assert_no_pending_responses()
