"""How often moto's SQS looks at a queue's messages: a long poll's looks, counted rather than timed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from moto.sqs.models import Queue as SqsQueue


@contextlib.contextmanager
def counted_looks() -> Iterator[list[int]]:
    """Count every look at any queue's messages (``Queue.messages``) while open: ``looks[0]``."""
    looks = [0]
    messages = SqsQueue.messages

    def counted(queue: SqsQueue) -> list:
        looks[0] += 1
        return messages.fget(queue)

    with mock.patch.object(SqsQueue, "messages", property(counted)):
        yield looks
