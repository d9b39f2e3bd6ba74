"""The local AWS's ``duplicates`` and ``stale-reads`` modes: each happens, as a boto3 client over HTTP sees it.

Clients here retry nothing (``total_max_attempts=1``), so what the server answers is what the test sees.
"""

from __future__ import annotations

import time

import pytest
from test_faults import client_of, make_state_table

from skynet_tasks.local.faults import Faults, FaultSpecError, parse_faults
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(90)


def test_the_spec_names_duplicates_and_stale_reads():
    assert parse_faults("duplicates,stale-reads") == Faults(duplicate_rate=0.05, stale_window=1.0)
    every = parse_faults("conflicts=20,throttle=0.1,duplicates=0.5,stale-reads=2.5")
    assert every == Faults(0.02, 0.1, duplicate_rate=0.5, stale_window=2.5) and parse_faults(every.spec()) == every


@pytest.mark.parametrize("spec", ["duplicates=0", "duplicates=1.5", "duplicates=x", "stale-reads=0",
                                  "stale-reads=61", "stale=1"])
def test_a_bad_duplicates_or_stale_reads_spec_is_refused(spec):
    with pytest.raises(FaultSpecError):
        parse_faults(spec)


# ---- duplicates -----------------------------------------------------------------

@pytest.fixture(scope="module")
def duplicating():
    server = MotoServer.start(faults="duplicates=1")  # every message, once: the outcome is certain
    yield server
    server.stop()


def receive(sqs, url: str, count: int = 10) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=0,
                               AttributeNames=["All"]).get("Messages", [])


def test_a_standard_queue_delivers_a_deleted_message_again_once(duplicating):
    sqs = client_of(duplicating, "sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="update r1 ticket 2")["MessageId"]

    (first,) = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # answered as a success
    (again,) = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])

    assert first["MessageId"] == again["MessageId"] == sent
    assert again["Body"] == "update r1 ticket 2" and again["ReceiptHandle"] != first["ReceiptHandle"]
    assert receive(sqs, url) == []  # a message is delivered again once, not forever
    assert duplicating.fault_counts()["duplicated:standard"] >= 1


def test_a_fifo_queue_delivers_a_message_again_in_its_place_in_its_group(duplicating):
    sqs = client_of(duplicating, "sqs")
    url = sqs.create_queue(QueueName="maint.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body in ("report 1", "report 2"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body)

    seen = []
    for _ in range(4):
        (message,) = receive(sqs, url, count=1)  # as a conductor receives: prefetch 1
        seen.append((message["Body"], message["MessageId"], message["Attributes"]["ApproximateReceiveCount"]))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    assert [(body, count) for body, _, count in seen] == [("report 1", "1"), ("report 1", "2"),
                                                          ("report 2", "1"), ("report 2", "2")]
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1]  # the same message, not a new send
    assert receive(sqs, url) == []
    assert duplicating.fault_counts()["duplicated:fifo"] >= 2


def test_without_the_mode_a_deleted_message_is_gone():
    plain = MotoServer.start()
    try:
        sqs = client_of(plain, "sqs")
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m")
        (first,) = receive(sqs, url)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
        assert receive(sqs, url) == []
    finally:
        plain.stop()


# ---- stale reads ----------------------------------------------------------------

KEY = {"pk": {"S": "group"}, "sk": {"S": "x"}}


def test_an_eventually_consistent_read_after_an_overwrite_answers_the_previous_version_for_a_while():
    server = MotoServer.start(faults="stale-reads=2")
    try:
        db, s3 = client_of(server, "dynamodb"), client_of(server, "s3")
        make_state_table(db)
        db.put_item(TableName="state", Item={**KEY, "v": {"N": "1"}})
        db.put_item(TableName="state", Item={**KEY, "v": {"N": "2"}})
        db.put_item(TableName="state", Item={"pk": {"S": "new"}, "sk": {"S": "x"}})
        query = {"TableName": "state", "KeyConditionExpression": "pk = :pk",
                 "ExpressionAttributeValues": {":pk": {"S": "group"}}}

        eventual = db.get_item(TableName="state", Key=KEY)["Item"]["v"]
        consistent = db.get_item(TableName="state", Key=KEY, ConsistentRead=True)["Item"]["v"]
        queried = [item["v"] for item in db.query(**query)["Items"]]
        batch = db.batch_get_item(RequestItems={"state": {"Keys": [KEY]}})["Responses"]["state"]
        new_item = db.get_item(TableName="state", Key={"pk": {"S": "new"}, "sk": {"S": "x"}})
        s3.create_bucket(Bucket="repo")
        s3.put_object(Bucket="repo", Key="manifest.json", Body=b"old")
        s3.put_object(Bucket="repo", Key="manifest.json", Body=b"new")
        manifest = s3.get_object(Bucket="repo", Key="manifest.json")["Body"].read()
        time.sleep(2.1)
        settled = db.get_item(TableName="state", Key=KEY)["Item"]["v"]
        counts = server.fault_counts()
    finally:
        server.stop()

    assert eventual == {"N": "1"} and consistent == {"N": "2"}
    assert queried == [{"N": "1"}] and [item["v"] for item in batch] == [{"N": "1"}]
    assert "Item" not in new_item  # not there yet, for an eventually consistent read
    assert manifest == b"new"  # S3 is strongly consistent: never stale
    assert settled == {"N": "2"}  # and then every read answers the latest version
    assert counts["stale-read:dynamodb"] == 4
