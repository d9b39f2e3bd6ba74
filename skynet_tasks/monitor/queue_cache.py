"""The env's queue depths, read from SQS at most once per queue per ``ttl`` seconds, for one dashboard process.

Every scrape of /metrics, every page's dead-letter banner and every refresh of /queues wants the
depths of every queue of the env. Read afresh each time, that was a ``GetQueueUrl`` and a
``GetQueueAttributes`` per queue per request: about 400 calls per scrape at 100 instances, and an
open /queues tab cost more than the idle fleet. Depths are approximate in SQS anyway (its own
documentation says "approximate" in every attribute name), so a snapshot up to 30 s old says
as much. Here one snapshot serves every reader: a ``ListQueues`` (whose answer carries the URLs,
so no ``GetQueueUrl``) and one ``GetQueueAttributes`` per queue, then nothing until it is older
than ``ttl``.

One cache per dashboard process: gunicorn runs the dashboard as one worker process of several
threads (``wsgiserver.serve_wsgi``), and the threads share it under one lock. A reader who finds
the snapshot old refreshes it while holding the lock, so the others wait for that one read rather
than making their own. A failed read is remembered for ``ttl`` too: an SQS outage costs one call
per ``ttl``, not one per scrape.

Trust: queue names come from SQS's listing of the env's own prefix; they are shown escaped and
used only to look up the attributes of the URL SQS itself gave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skynet_tasks import names

log = logging.getLogger(__name__)

TTL_SECONDS = 30.0
DEPTH_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed")


class QueuesUnreadable(BotoCoreError):
    """The env's queues could not be listed (the last read failed, and it is not time to try again)."""

    fmt = "queues of env {env} unreadable: {reason}"


@dataclass(frozen=True)
class QueueSnapshot:
    """The depths of every queue of an env as read at ``read_at``; ``generation`` grows when they change."""

    read_at: float
    depths: dict[str, dict[str, int]] = field(default_factory=dict)
    generation: int = 0


class QueueCache:
    """Depths of one env's queues through one SQS client, shared by a process's threads, at most one
    read per queue per ``ttl`` seconds."""

    def __init__(self, sqs: Any, env: str, ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sqs = sqs
        self.env = env
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshot: QueueSnapshot | None = None
        self._read_at: float | None = None  # on ``clock``, of the last read, good or failed
        self._failure: str | None = None

    def snapshot(self) -> QueueSnapshot:
        """The env's queue depths, read now if the last read is ``ttl`` old; QueuesUnreadable if it failed."""
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._read_at = now
                try:
                    depths = self._read()
                except (ClientError, BotoCoreError) as error:
                    log.warning("queues of env %s unreadable (next try in %.0f s): %s", self.env, self.ttl, error)
                    self._failure = str(error)
                else:
                    self._failure = None
                    previous = self._snapshot
                    generation = (previous.generation if previous else 0) + (
                        previous is None or previous.depths != depths)
                    self._snapshot = QueueSnapshot(time.time(), depths, generation)
            if self._failure is not None or self._snapshot is None:
                raise QueuesUnreadable(env=self.env, reason=self._failure or "never read")
            return self._snapshot

    def generation(self) -> int:
        """A number that changes when the depths change (0 while none were read, -1 while unreadable)."""
        try:
            return self.snapshot().generation
        except QueuesUnreadable:
            return -1

    def _read(self) -> dict[str, dict[str, int]]:
        urls: list[str] = []
        for page in self.sqs.get_paginator("list_queues").paginate(QueueNamePrefix=names.prefix(self.env)):
            urls += page.get("QueueUrls", [])
        depths = {}
        for url in sorted(urls):
            try:
                attributes = self.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES)).get("Attributes", {})
            except ClientError as error:
                # Deleted between the listing and the read (an instance terminated): nothing to show.
                log.info("queue %s unreadable, left out: %s", url, error)
                continue
            depths[url.rsplit("/", 1)[-1]] = {
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        return depths
