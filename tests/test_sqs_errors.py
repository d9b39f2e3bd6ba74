"""kombu's answer to a throttled or failing SQS request (``skynet_tasks.compat.kombu_sqs_errors``).

A worker stops at an error that is not one of its transport's connection errors, and restarts
its consumer after one that is. The first test shows the bug in the installed kombu: when it
fails, kombu fixed it, and the patch can go.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from kombu.asynchronous.aws.connection import AsyncAWSQueryConnection
from kombu.transport.SQS import Transport

from skynet_tasks.compat import kombu_sqs_errors

pytestmark = pytest.mark.timeout(30)

THROTTLED = (b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled."}')
DENIED = b'{"__type":"com.amazonaws.sqs#AccessDenied","message":"not authorized to perform: sqs:ReceiveMessage"}'


@dataclass
class Answer:
    """What kombu's HTTP client hands ``_for_status``: a status and its reason."""

    status: int
    reason: str


def error_for(status: int, reason: str, body: bytes) -> Exception:
    """The exception kombu raises for an SQS answer (``_for_status`` reads nothing of its connection)."""
    return AsyncAWSQueryConnection._for_status(None, Answer(status, reason), body)  # type: ignore[arg-type]


@pytest.fixture
def patched():
    with kombu_sqs_errors.PATCH.applied():
        yield


def test_still_needed_kombu_alone_stops_the_worker_at_a_throttled_or_failing_answer():
    assert not kombu_sqs_errors.PATCH.installed
    for status, reason, body in [(400, "Bad Request", THROTTLED), (503, "Service Unavailable", b"")]:
        assert not isinstance(error_for(status, reason, body), Transport.connection_errors)


@pytest.mark.parametrize(("status", "reason", "body"), [
    (400, "Bad Request", THROTTLED),
    (400, "Bad Request", b"<ErrorResponse><Error><Code>RequestThrottled</Code></Error></ErrorResponse>"),
    (500, "Internal Server Error", b""),
    (503, "Service Unavailable", b"<Error><Code>ServiceUnavailable</Code></Error>"),
])
def test_a_throttled_or_failing_answer_is_a_connection_error_the_consumer_restarts_after(patched, status, reason,
                                                                                          body):
    error = error_for(status, reason, body)

    assert isinstance(error, Transport.connection_errors)
    assert str(status) in str(error)


def test_a_refusal_stays_an_error_to_see(patched):
    # A missing permission is not SQS asking for a retry: restarting would hide it
    error = error_for(403, "Forbidden", DENIED)

    assert not isinstance(error, Transport.connection_errors)
    assert "403" in str(error) and "AccessDenied" in str(error)
