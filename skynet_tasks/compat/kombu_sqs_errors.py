"""kombu's asynchronous SQS client: a throttled or failing SQS answer is a connection error, not a crash.

A Celery worker on SQS receives through kombu's ``AsyncAWSQueryConnection``. When SQS answers
anything but 200, kombu 5.7 raises a plain ``Exception`` (``_for_status``). Celery takes that as
an unrecoverable error and the worker exits: one throttled ``ReceiveMessage`` (HTTP 400
``RequestThrottled``, ``ThrottlingException``) or one 5xx from SQS, both of which AWS documents
as "retry", stopped every worker that met it (seen with the local AWS's ``throttle`` fault mode:
every worker of a cluster gone within seconds). The errors kombu's SQS transport declares as
connection errors include botocore's ``BotoCoreError``; Celery restarts the consumer after one of
them, with its back-off. The patch makes throttling and 5xx answers such an error; any other
answer (a 403 from a missing permission, a malformed request) stays what it was: a fault to see.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from botocore.exceptions import BotoCoreError

from skynet_tasks.compat.patching import Patch, replace

# The codes AWS gives a request it throttled (SQS's own, and the generic ones of its JSON protocol).
THROTTLING_CODES = (b"RequestThrottled", b"ThrottlingException", b"Throttling", b"TooManyRequests")


class SQSAnswerToRetry(BotoCoreError):
    """SQS throttled a request or failed on its side: try again later (a connection error to kombu)."""

    fmt = "SQS answered HTTP {status} {reason}: try again ({body})"


def retryable(status: int, body: bytes) -> bool:
    """Whether an SQS answer with ``status`` and ``body`` asks for a retry: a 5xx, or a throttled request."""
    return status >= 500 or (status in (400, 403, 429) and any(code in body for code in THROTTLING_CODES))


def _apply(stack: ExitStack) -> None:
    from kombu.asynchronous.aws.connection import AsyncAWSQueryConnection

    original = AsyncAWSQueryConnection._for_status

    def for_status(self: Any, response: Any, body: bytes | None) -> Exception:
        if retryable(int(response.status), body or b""):
            return SQSAnswerToRetry(status=response.status, reason=response.reason,
                                    body=(body or b"")[:200].decode(errors="replace"))
        error: Exception = original(self, response, body)
        return error

    replace(stack, AsyncAWSQueryConnection, "_for_status", for_status)


PATCH = Patch("sqs_errors", "kombu", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
