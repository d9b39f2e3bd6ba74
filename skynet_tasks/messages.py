"""Sending Skynet's messages: build requests, maintenance events and directed work.

Payloads stay small (ids and keys, never artifacts or logs). Maintenance events
go to the group's FIFO queue with ``MessageGroupId=<group>`` (ticket requests:
``<group>:tickets``) and an explicit deduplication id, so SQS serializes them
across the whole group; the ids are
derived from the event, so a sender that repeats itself is deduplicated by SQS
for five minutes, and after that by the state table.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from celery import Celery

from skynet_tasks import names

log = logging.getLogger(__name__)

BUILD_TASK = "skynet.build"
BUILD_REQUEST_TASK = "skynet.build_request"
MAINTENANCE_TASK = "skynet.maintenance"
UPDATE_TASK = "skynet.update"
TAKE_TICKET_TASK = "skynet.take_ticket"
RE_REGISTER_TASK = "skynet.re_register"
DRAIN_TASK = "skynet.drain"
REGISTRY_CHANGED_TASK = "skynet.registry_changed"
PUBLISH_TASK = "skynet.publish"


def _dedup_id(text: str) -> str:
    # SQS deduplication ids are at most 128 characters of a restricted alphabet.
    return hashlib.sha256(text.encode()).hexdigest()


class Messenger:
    """Sends Skynet's messages for one env through a Celery app."""

    def __init__(self, app: Celery, env: str) -> None:
        self.app = app
        self.env = env

    def build(self, group: str, request: dict[str, Any], attempt: str = "first") -> None:
        """Ask the group for a build: the member whose conductor receives it builds (``tasks.build``).

        The request travels on the group's maintenance queue, which every member already
        polls: a build queue of its own would cost each member a long poll, 180 SQS
        requests an hour, for a message that comes a few times a day.
        """
        self.app.send_task(
            BUILD_REQUEST_TASK, kwargs={"request": request}, queue=names.maintenance_queue(self.env, group),
            MessageGroupId=group, MessageDeduplicationId=_dedup_id(f"{group}:build:{request.get('rollout_id')}:"
                                                                   f"{attempt}"),
        )
        log.info("build of %s for group %s requested (rollout %s)", request.get("sha"), group,
                 request.get("rollout_id"))

    def maintenance(self, group: str, event: dict[str, Any], dedup: str, lane: str | None = None) -> None:
        """Post a conductor event; ``lane`` names a second message group of the same queue.

        Ticket requests go in their own lane: when a rollout starts, every member asks
        for a ticket at once, and a report (whose step hands the turn on) must not wait
        behind that burst. Steps of the two lanes may then run at the same time; the
        state table's conditional write makes one of them decide again.
        """
        self.app.send_task(
            MAINTENANCE_TASK, kwargs={"group": group, "event": event},
            queue=names.maintenance_queue(self.env, group),
            MessageGroupId=f"{group}:{lane}" if lane else group, MessageDeduplicationId=_dedup_id(f"{group}:{dedup}"),
        )

    def to_instance(self, instance_id: str, task: str, kwargs: dict[str, Any], expires: float | None = None) -> None:
        """Send ``task`` with ``kwargs`` to the instance's own queue, for its work worker."""
        # Not declared first: declaring asks SQS for the queue's size (GetQueueAttributes), once per
        # queue and connection, and a conductor telling 19 members to take a ticket asked 19 times.
        # The message still goes to that queue (Celery sends it through the default exchange with
        # the queue's name), and kombu still creates the queue if it is missing, as declaring did.
        self.app.send_task(task, kwargs=kwargs, queue=names.instance_queue(self.env, instance_id), expires=expires,
                           declare=[])
