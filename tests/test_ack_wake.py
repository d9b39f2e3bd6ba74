"""The fix for kombu's SQS consumer (``skynet_tasks.compat.kombu_ack_wake``), on kombu's real event loop,
SQS channel and curl client, against moto's server.

The situation it fixes: the channel's check for a free prefetch slot ran (and scheduled
itself again) just before the acknowledgement that freed the slot, and the loop then slept
in ``poll`` until its next timer, libcurl's, about a second away. Here the acknowledgement
comes from the loop's ``on_tick``, after the check and before ``poll``. The first test shows the
bug in the installed kombu: when it fails, kombu fixed it, and the patch can go.
"""

from __future__ import annotations

import os
import socket
import time

import boto3
import pytest
from kombu import Connection
from kombu.asynchronous import Hub, set_event_loop

from skynet_tasks.compat import kombu_ack_wake, kombu_curl_timer
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(60)

QUEUE = "skynet-test-ack-wake"


@pytest.fixture
def sqs_endpoint(monkeypatch):
    server = MotoServer.start()
    for key, value in server.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("sqs").create_queue(QueueName=QUEUE)
    yield server
    server.stop()


def seconds_until_the_next_message_arrives() -> float:
    """Consume one message, acknowledge it the way that lost the wake-up, then time the next one."""
    hub = Hub()
    set_event_loop(hub)
    connection = Connection("sqs://", transport_options={"wait_time_seconds": 20, "polling_interval": 0})
    try:
        channel = connection.channel()
        channel.basic_qos(0, 1, False)  # one message at a time, as Skynet's workers
        received: list[tuple[float, object]] = []
        channel.basic_consume(QUEUE, no_ack=False, callback=lambda message: received.append((time.monotonic(),
                                                                                               message)),
                              consumer_tag="test")
        producer = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        url = producer.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        payload = '{"body": "e30=", "content-encoding": "utf-8", "content-type": "application/json", ' \
                  '"headers": {}, "properties": {"delivery_tag": "x", "body_encoding": "base64"}}'
        producer.send_message(QueueUrl=url, MessageBody=payload)
        # A worker's loop always watches its pool's pipes; with nothing to watch, it would not poll at all.
        pipe_reader, pipe_writer = socket.socketpair()
        hub.add_reader(pipe_reader, lambda *_: None)
        loop = hub.create_loop()
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            next(loop)
        assert received, "the first message never arrived"
        tag = received[0][1].delivery_tag  # type: ignore[attr-defined]
        for _ in range(3):
            next(loop)  # the check runs, finds the slot held, and schedules itself again

        def acknowledge_after_the_check() -> None:
            hub.on_tick.discard(acknowledge_after_the_check)
            channel.basic_ack(tag)
            producer.send_message(QueueUrl=url, MessageBody=payload)

        hub.on_tick.add(acknowledge_after_the_check)
        acked = time.monotonic()
        while len(received) < 2 and time.monotonic() < deadline:
            next(loop)
        assert len(received) == 2, "the second message never arrived"
        return received[1][0] - acked
    finally:
        for end in (pipe_reader, pipe_writer):
            end.close()
        connection.release()
        set_event_loop(None)
        hub.close()


@pytest.fixture
def curl_timer_patched():
    # kombu alone takes libcurl's millisecond timers in seconds: every receive would wait for them
    with kombu_curl_timer.PATCH.applied():
        yield


def test_still_needed_kombu_alone_receives_a_second_after_the_acknowledgement(sqs_endpoint, curl_timer_patched):
    assert not kombu_ack_wake.PATCH.installed
    waited = seconds_until_the_next_message_arrives()
    assert waited >= 0.5, f"kombu alone received {waited:.2f} s after the acknowledgement: is ack_wake still needed?"


def test_after_an_acknowledgement_the_next_message_is_received_at_once(sqs_endpoint, curl_timer_patched):
    with kombu_ack_wake.PATCH.applied():
        waited = seconds_until_the_next_message_arrives()
    assert waited < 0.5, f"the next receive started {waited:.2f} s after the acknowledgement"  # unfixed: 1.0 s
