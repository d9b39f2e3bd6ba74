"""kombu's asynchronous SQS receive: a throttled ReceiveMessage is an empty receive, not a crash.

A Celery worker on SQS receives through kombu's ``AsyncAWSQueryConnection``. kombu 5.7 already
takes a timeout or a 5xx answer to a receive as an empty list of messages ("this prevents
hanging the Celery worker": the next poll follows), but any other answer becomes a plain
``Exception``, which Celery takes as an unrecoverable error: the worker exits. SQS throttling
(HTTP 400 ``RequestThrottled``; ``ThrottlingException`` in its JSON protocol) is such an answer,
and AWS documents it as "retry": every worker of a local cluster stopped within seconds under
the local AWS's ``throttle`` fault mode. The patch takes a throttled receive as kombu takes a
5xx one: nothing received, poll again. (Making it a connection error instead restarts Celery's
consumer, after which a worker was seen never to consume its own queue again.) Any other
answer (a 403 from a missing permission, a malformed request) stays what it was: a fault to see.

kombu's own empty answer (``[]``, for a timeout or a 5xx) is itself a crash in 5.7: the channel
reads a receive's answer with ``answer.get("Messages")``, and a list has no ``get``
("Unrecoverable error": under the local AWS's SQS throttling every worker stopped within a
minute, and the conductor, seeing their heartbeats stop, completed rollouts without them). A
receive that got nothing is answered here as SQS answers an empty receive: no ``Messages``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

# The codes AWS gives a request it throttled (SQS's own, and the generic ones of its JSON protocol).
THROTTLING_CODES = (b"RequestThrottled", b"ThrottlingException", b"Throttling", b"TooManyRequests")


def throttled(status: int, body: bytes) -> bool:
    """Whether an SQS answer with ``status`` and ``body`` is SQS throttling the request."""
    return status in (400, 403, 429) and any(code in body for code in THROTTLING_CODES)


class _Reread:
    """An answer whose body was read to look at it, handing the same bytes to kombu's own reader."""

    def __init__(self, response: Any, body: bytes) -> None:
        self._response, self._body = response, body

    def read(self) -> bytes:
        """The body, as read before."""
        return self._body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def _apply(stack: ExitStack) -> None:
    from kombu.asynchronous.aws.connection import AsyncAWSQueryConnection

    original = AsyncAWSQueryConnection._on_list_ready

    def on_list_ready(self: Any, parent: Any, markers: Any, operation: Any, response: Any) -> Any:
        if response.status == self.STATUS_CODE_OK:
            return original(self, parent, markers, operation, response)
        body = response.read() or b""
        status = int(response.status)
        if throttled(status, body) or status in self.STATUS_CODES_TIMEOUT or status in self.STATUS_CODES_SERVER_ERRORS:
            # Nothing received, the next poll follows: an empty receive's answer (the channel calls .get on it).
            return {} if operation == "ReceiveMessage" else []
        return original(self, parent, markers, operation, _Reread(response, body))

    replace(stack, AsyncAWSQueryConnection, "_on_list_ready", on_list_ready)


PATCH = Patch("sqs_throttled_receive", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
