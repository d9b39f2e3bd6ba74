"""``compat.moto_sqs``: a waiting long poll looks again when a message could have become deliverable, and not between.

Every test here but the first sets the poll's own recheck to 30 s, longer than the poll: what the test does
must wake it. Each would otherwise get its message only at the end of its 10 s wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from unittest import mock

import boto3
import pytest
from moto.server import ThreadedMotoServer
from moto.sqs.models import SQSBackend
from sqs_looks import counted_looks

from skynet_tasks.compat import moto_sqs

pytestmark = pytest.mark.timeout(60)

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def sqs() -> Iterator[object]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.client("sqs", endpoint_url=f"http://{host}:{port}", **CREDENTIALS)
    server.stop()


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_sqs, "RECHECK", 30.0)


def new_queue(client, name: str) -> str:
    return client.create_queue(QueueName=f"{name}-{time.monotonic_ns()}")["QueueUrl"]


def poll(client, url: str, seconds: int = 10) -> tuple[list[str], float]:
    """One long poll of ``url``: the bodies it got and how long it took."""
    started = time.monotonic()
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=seconds).get("Messages", [])
    return [m["Body"] for m in got], time.monotonic() - started


def test_an_idle_long_poll_looks_when_it_starts_and_about_once_a_second(sqs):
    # It looked every 0.1 s before: with 40 instances, 800 looks a second, which held moto's GIL 44% of the time.
    url = new_queue(sqs, "idle")
    with moto_sqs.PATCH.applied(), counted_looks() as looks:
        assert poll(sqs, url, seconds=3)[0] == []
    assert looks[0] <= 5, looks  # (30 when it looked every 0.1 s)


def test_a_message_reaches_a_waiting_poll_when_its_visibility_timeout_ends(sqs, patient):
    url = new_queue(sqs, "visible-again")
    sqs.send_message(QueueUrl=url, MessageBody="m")
    assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]) == 1  # in flight for 1 s
    with moto_sqs.PATCH.applied():
        bodies, waited = poll(sqs, url)
    assert bodies == ["m"]
    assert 0.5 < waited < 3, waited


def test_a_message_returned_to_its_queue_reaches_a_waiting_poll_at_once(sqs, patient):
    # kombu returns a rejected message by setting its visibility timeout to 0 (or a few seconds).
    url = new_queue(sqs, "returned")
    sqs.send_message(QueueUrl=url, MessageBody="m")
    (held,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    later = threading.Timer(0.3, lambda: sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0))
    with moto_sqs.PATCH.applied():
        later.start()
        bodies, waited = poll(sqs, url)
        later.join()
    assert bodies == ["m"]
    assert waited < 2, waited


def test_a_delayed_message_reaches_a_waiting_poll_when_its_delay_ends(sqs, patient):
    url = new_queue(sqs, "delayed")
    with moto_sqs.PATCH.applied():
        sqs.send_message(QueueUrl=url, MessageBody="m", DelaySeconds=1)
        bodies, waited = poll(sqs, url)
    assert bodies == ["m"]
    assert 0.5 < waited < 3, waited


def test_a_message_sent_after_a_poll_looked_and_before_it_waits_is_not_missed(sqs, patient):
    # The notification of a message sent in that moment reaches no one waiting: the poll must see it changed.
    url = new_queue(sqs, "in-between")
    receive, sent = SQSBackend.receive_message, []

    def look_then_send(self, queue_name, *args, **kwargs):
        got = receive(self, queue_name, *args, **kwargs)
        if not sent:
            sent.append(self.send_message(queue_name, "sent in between"))
        return got

    with mock.patch.object(SQSBackend, "receive_message", look_then_send), moto_sqs.PATCH.applied():
        bodies, waited = poll(sqs, url)
    assert bodies == ["sent in between"]
    assert waited < 2, waited
