"""Acknowledging a receive's messages together (``compat.kombu_sqs_batch_ack``), on a real queue of moto's server.

kombu deletes each acknowledged message with a request of its own; a run of ticket requests is deleted
with one ``DeleteMessageBatch``. What a user sees: every message is gone from the queue (none comes back
after its visibility timeout), in one request, and a message the batch could not delete is still settled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Queue
from ledgerkit import requests_made, sqs_on_moto

from skynet_tasks.compat import kombu_sqs_batch_ack
from skynet_tasks.compat.kombu_sqs_batch_ack import ack_together

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    with sqs_on_moto() as client:
        yield client


@pytest.fixture
def requests() -> Iterator[list[str]]:
    """The AWS requests this thread makes (their operation names)."""
    with requests_made() as made:
        yield made


def received(sqs: Any, name: str, count: int) -> tuple[Connection, Any, list[Any]]:
    """``count`` messages sent to a new queue ``name`` and received through kombu: (connection, channel, them)."""
    sqs.create_queue(QueueName=name)
    connection = Connection("sqs://", transport_options={"wait_time_seconds": 1, "polling_interval": 0})
    with connection.Producer() as producer:
        for n in range(count):
            producer.publish({"n": n}, routing_key=name, declare=[Queue(name)])
    channel = connection.channel()
    got: list[Any] = []
    consumer = Consumer(channel, queues=[Queue(name)], callbacks=[lambda _body, message: got.append(message)],
                        prefetch_count=count, accept=["json"])
    with consumer:
        while len(got) < count:
            connection.drain_events(timeout=10)
    return connection, channel, got


def messages_left(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_receives_messages_are_deleted_with_one_request(sqs, requests):
    connection, channel, messages = received(sqs, "skynet-test-batch-ack", 4)
    requests.clear()

    ack_together(messages)

    assert requests == ["DeleteMessageBatch"]
    assert all(m.acknowledged for m in messages)
    assert channel.qos.can_consume_max_estimate() == 4  # every prefetch slot released: the consumer receives again
    assert messages_left(sqs, "skynet-test-batch-ack") == 0
    connection.release()


def test_a_message_the_batch_could_not_delete_is_still_settled_alone(sqs, requests):
    connection, channel, messages = received(sqs, "skynet-test-batch-ack-refused", 3)
    messages[1].delivery_info["sqs_message"]["ReceiptHandle"] = "not-a-receipt-handle"  # SQS refuses to delete it
    requests.clear()

    ack_together(messages)

    assert requests == ["DeleteMessageBatch", "DeleteMessage"]  # the refused one alone, as kombu settles it
    assert all(m.acknowledged for m in messages) and channel.qos.can_consume_max_estimate() == 3
    assert messages_left(sqs, "skynet-test-batch-ack-refused") == 1  # back after its visibility timeout
    connection.release()


def test_on_a_kombu_it_was_not_written_for_each_message_is_acknowledged_alone(sqs, requests, monkeypatch):
    connection, channel, messages = received(sqs, "skynet-test-batch-ack-other-kombu", 3)
    monkeypatch.setattr(kombu_sqs_batch_ack, "SUPPORTED", kombu_sqs_batch_ack.SpecifierSet(">=99"))
    requests.clear()

    ack_together(messages)

    assert requests == ["DeleteMessage"] * 3
    assert all(m.acknowledged for m in messages) and messages_left(sqs, "skynet-test-batch-ack-other-kombu") == 0
    connection.release()
