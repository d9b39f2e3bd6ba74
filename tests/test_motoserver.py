"""The local AWS endpoint: moto's server as Skynet starts it (skynet_tasks/local/moto_main.py, patched by
skynet_tasks/compat/moto_*.py; each patch's "still needed" test is in tests/test_compat_moto.py).

moto's own long poll spins a core while a FIFO group is in flight, and delivers from a
group in flight to a poll that began before; Skynet's starts it patched so that a poll
waits idle and a group's messages go to one consumer at a time, as on SQS, while a poll
still delivers what SQS would.
moto's transactions copy the whole table to roll back; Skynet's copy only the items a
transaction names, and a failed transaction must still change nothing.
Its log keeps the requests refused or failed, not every one that succeeded.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import boto3
import pytest

from skynet_tasks.compat import moto_sqs
from skynet_tasks.local.moto_main import take_recheck_argument
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def moto_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("moto") / "moto.log"


@pytest.fixture(scope="module")
def server(moto_log):
    started = MotoServer.start(log_file=moto_log)
    yield started
    started.stop()


def client_of(server, service: str):
    return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106 - moto's dummy


@pytest.fixture(scope="module")
def sqs(server):
    return server, client_of(server, "sqs")


@pytest.fixture(scope="module")
def table(server):
    db = client_of(server, "dynamodb")
    db.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "S"}])
    return db


def fifo_queue(client, name: str) -> str:
    return client.create_queue(QueueName=f"{name}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "2"})["QueueUrl"]


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_long_poll_behind_an_in_flight_fifo_group_waits_idle(sqs):
    server, client = sqs
    url = fifo_queue(client, "held")
    for n in range(3):
        client.send_message(QueueUrl=url, MessageBody=f"m{n}", MessageGroupId="g")
    assert len(client.receive_message(QueueUrl=url)["Messages"]) == 1  # the group is now in flight

    before = cpu_seconds(server.process.pid)
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    used = cpu_seconds(server.process.pid) - before

    assert "Messages" not in got  # the group's order holds: nothing while its head is in flight
    assert used < 0.5, f"moto burned {used:.2f} CPU seconds during a 1 s long poll"  # unpatched: about 1.0


def test_a_waiting_long_poll_still_gets_a_new_message_and_a_message_whose_visibility_ended(sqs):
    _, client = sqs
    url = fifo_queue(client, "waiting")
    later = threading.Timer(0.5, lambda: client.send_message(QueueUrl=url, MessageBody="new", MessageGroupId="a"))
    later.start()
    started = time.monotonic()
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    assert [m["Body"] for m in got["Messages"]] == ["new"] and time.monotonic() - started < 5

    # Not deleted: after its visibility timeout (2 s) the same message comes back to a waiting poll
    again = client.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    assert [m["Body"] for m in again["Messages"]] == ["new"]


def test_a_message_group_is_in_flight_at_one_consumer_at_a_time_under_long_polling(sqs):
    # moto alone: a poll that began while the group was free delivers from it even after
    # another poll took the group's head, so both consumers held a message of the group.
    _, client = sqs
    url = fifo_queue(client, "exclusive")
    got: list[tuple[str, str]] = []

    def consume(name: str) -> None:
        for message in client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []):
            got.append((name, message["Body"]))

    pollers = [threading.Thread(target=consume, args=(name,)) for name in ("first", "second")]
    for poller in pollers:
        poller.start()
    time.sleep(0.2)  # both polls are waiting on an empty queue (and end before m1's visibility, 2 s)
    client.send_message(QueueUrl=url, MessageBody="m1", MessageGroupId="g")
    time.sleep(0.2)
    client.send_message(QueueUrl=url, MessageBody="m2", MessageGroupId="g")
    for poller in pollers:
        poller.join()
    assert [body for _, body in got] == ["m1"], got  # m2 waits until m1 is deleted (or its visibility ends)


def test_deleting_a_fifo_groups_head_hands_its_next_message_to_a_waiting_poll_at_once():
    # Polls look again on their own only every 30 s here: the delete must wake them.
    slow_server = MotoServer.start(sqs_recheck=30)
    try:
        client = client_of(slow_server, "sqs")
        url = fifo_queue(client, "handed-on")
        for body in ("m1", "m2"):
            client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
        (head,) = client.receive_message(QueueUrl=url)["Messages"]
        later = threading.Timer(0.5, lambda: client.delete_message(QueueUrl=url,
                                                                   ReceiptHandle=head["ReceiptHandle"]))
        later.start()
        started = time.monotonic()
        got = client.receive_message(QueueUrl=url, WaitTimeSeconds=10)
        waited = time.monotonic() - started
        later.join()
    finally:
        slow_server.stop()
    assert [m["Body"] for m in got["Messages"]] == ["m2"]
    assert waited < 5, f"the poll got m2 only after {waited:.1f} s, at the end of its wait"


def test_the_sqs_recheck_is_an_argument_of_the_server_and_a_value_out_of_range_is_refused():
    assert take_recheck_argument(["-p", "5000", "--sqs-recheck", "30", "-H", "h"]) == (30.0, ["-p", "5000", "-H", "h"])
    assert take_recheck_argument(["--sqs-recheck=0.5"]) == (0.5, [])
    assert take_recheck_argument([]) == (moto_sqs.DEFAULT_RECHECK, [])
    for bad in ("0", "61", "nan", "soon", ""):
        with pytest.raises(ValueError, match="--sqs-recheck"):
            take_recheck_argument(["--sqs-recheck", bad])
    with pytest.raises(ValueError, match="0.01 to 60.0 seconds"):
        MotoServer.start(sqs_recheck=0)  # refused before a server starts


def key(pk: str, sk: str = "x") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(db, pk: str, sk: str = "x") -> dict | None:
    return db.get_item(TableName="state", Key=key(pk, sk), ConsistentRead=True).get("Item")


def test_a_failed_transaction_changes_nothing(table):
    db = table
    db.put_item(TableName="state", Item={**key("kept"), "v": {"N": "1"}})
    db.put_item(TableName="state", Item={**key("gone"), "v": {"N": "1"}})

    with pytest.raises(db.exceptions.TransactionCanceledException):
        db.transact_write_items(TransactItems=[
            {"Put": {"TableName": "state", "Item": {**key("new"), "v": {"N": "1"}}}},
            {"Update": {"TableName": "state", "Key": key("kept"), "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"Delete": {"TableName": "state", "Key": key("gone")}},
            {"ConditionCheck": {"TableName": "state", "Key": key("absent"),
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])

    assert item(db, "new") is None
    assert item(db, "kept")["v"] == {"N": "1"}
    assert item(db, "gone")["v"] == {"N": "1"}


def test_a_transaction_that_passes_writes_every_item(table):
    db = table
    db.put_item(TableName="state", Item={**key("counter"), "v": {"N": "1"}})

    db.transact_write_items(TransactItems=[
        {"Put": {"TableName": "state", "Item": {**key("fresh", "y"), "v": {"N": "7"}}}},
        {"Update": {"TableName": "state", "Key": key("counter"), "UpdateExpression": "SET v = v + :one",
                    "ConditionExpression": "v = :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ])

    assert item(db, "fresh", "y")["v"] == {"N": "7"}
    assert item(db, "counter")["v"] == {"N": "2"}


def test_its_log_keeps_the_requests_refused_not_those_that_succeeded(server, moto_log):
    client = client_of(server, "sqs")
    client.create_queue(QueueName="logged")
    client.list_queues()
    with pytest.raises(client.exceptions.QueueDoesNotExist):
        client.get_queue_url(QueueName="never-made")

    log = moto_log.read_text()
    codes = re.findall(r'HTTP/1\.1\S*" (\d{3}) ', log)  # werkzeug's request lines (colored when refused)
    # The refusal (and those of the module's other tests), none of the hundreds of requests that succeeded.
    assert "400" in codes and all(code.startswith(("4", "5")) for code in codes), log
