"""kombu's answer to a throttled SQS receive (``skynet_tasks.compat.kombu_sqs_errors``).

kombu takes a 5xx answer to a receive as an empty receive; any other answer stops the worker.
The first test shows the bug in the installed kombu: when it fails, kombu fixed it, and the
patch can go.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from kombu.asynchronous.aws.connection import AsyncAWSQueryConnection
from kombu.transport.SQS import Channel

from skynet_tasks.compat import kombu_sqs_errors

pytestmark = pytest.mark.timeout(30)

THROTTLED_JSON = b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled."}'
THROTTLED_XML = b"<ErrorResponse><Error><Code>RequestThrottled</Code></Error></ErrorResponse>"
DENIED = b'{"__type":"com.amazonaws.sqs#AccessDenied","message":"not authorized to perform: sqs:ReceiveMessage"}'


@dataclass
class Answer:
    """What kombu's HTTP client hands its callbacks: a status, its reason and a body."""

    status: int
    reason: str
    body: bytes

    def read(self) -> bytes:
        return self.body


def receive_answered(answer: Answer) -> object:
    """What kombu makes of an answer to ReceiveMessage (a list of messages, or the exception it raises)."""
    connection = AsyncAWSQueryConnection.__new__(AsyncAWSQueryConnection)
    connection.sqs_connection = SimpleNamespace(meta=SimpleNamespace(service_model=None))  # read for a 200 only
    try:
        return connection._on_list_ready(None, [], "ReceiveMessage", answer)
    except Exception as error:  # noqa: BLE001 - what the worker would meet
        return error


def channel_takes(answer: object) -> object:
    """What kombu's SQS channel does with a receive's answer: the count of messages, or what it raises."""
    try:
        return Channel._on_messages_ready(SimpleNamespace(), "queue-url", "queue", answer)
    except Exception as error:  # noqa: BLE001 - what the worker would meet
        return error


@pytest.fixture
def patched():
    with kombu_sqs_errors.PATCH.applied():
        yield


def test_still_needed_kombu_alone_stops_the_worker_at_a_throttled_receive():
    assert not kombu_sqs_errors.PATCH.installed
    # kombu's own answer to a 5xx ([]) is a crash of the channel that reads it
    assert isinstance(channel_takes(receive_answered(Answer(503, "Service Unavailable", b""))), AttributeError)
    assert isinstance(receive_answered(Answer(400, "Bad Request", THROTTLED_JSON)), Exception)


@pytest.mark.parametrize("body", [THROTTLED_JSON, THROTTLED_XML], ids=["json", "query"])
def test_a_throttled_receive_is_an_empty_receive_and_the_next_poll_follows(patched, body):
    assert channel_takes(receive_answered(Answer(400, "Bad Request", body))) == 0


@pytest.mark.parametrize("status", [503, 504, 408], ids=["unavailable", "gateway timeout", "timeout"])
def test_a_server_error_or_timeout_is_an_empty_receive_too(patched, status):
    assert channel_takes(receive_answered(Answer(status, "Error", b""))) == 0


def test_a_refusal_stays_an_error_to_see_with_its_body(patched):
    # A missing permission is not SQS asking for a retry: polling on would hide it
    error = receive_answered(Answer(403, "Forbidden", DENIED))

    assert isinstance(error, Exception) and "403" in str(error) and "AccessDenied" in str(error)
