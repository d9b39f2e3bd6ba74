"""Sending Skynet's messages: build requests, maintenance events and directed work.

Payloads stay small (ids and keys, never artifacts or logs). Maintenance events
go to the group's FIFO queue with ``MessageGroupId=<group>`` (ticket requests:
``<group>:tickets``) and an explicit deduplication id, so SQS serializes them
across the whole group; the ids are
derived from the event, so a sender that repeats itself is deduplicated by SQS
for five minutes, and after that by the state table.

A message whose encoded size would pass ``MAX_MESSAGE_BYTES`` is refused here, before
anything is sent (``MessageTooLarge``, naming the task and the size): SQS would refuse
it anyway, and a caller learns why instead of meeting a botocore error mid-rollout.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from typing import Any

from celery import Celery
from kombu import Exchange
from kombu.serialization import dumps
from kombu.utils.json import dumps as json_dumps

from skynet_tasks import names

log = logging.getLogger(__name__)

BUILD_TASK = "skynet.build"
BUILD_REQUEST_TASK = "skynet.build_request"
MAINTENANCE_TASK = "skynet.maintenance"
UPDATE_TASK = "skynet.update"
TAKE_TICKET_TASK = "skynet.take_ticket"
PREPARE_TASK = "skynet.prepare"
RE_REGISTER_TASK = "skynet.re_register"
DRAIN_TASK = "skynet.drain"
REGISTRY_CHANGED_TASK = "skynet.registry_changed"
PUBLISH_TASK = "skynet.publish"

# SQS's message size limit, body and attributes together. SQS has taken up to 1 MiB since 2025
# (and so does moto 5.2), but a queue's MaximumMessageSize may still be 256 KiB, the limit for
# years and of queues made before: a Skynet message is ids and keys, so anything near either is a bug.
MAX_MESSAGE_BYTES = 256 * 1024


class MessageTooLarge(ValueError):
    """A message that SQS would refuse for its size; nothing was sent."""


class NoBroadcast(RuntimeError):
    """This process cannot publish to the group's topic (it was not configured with it); nothing was sent."""


def sqs_message_size(app: Celery, task: str, kwargs: dict[str, Any], queue: str,
                     properties: dict[str, Any] | None = None, expires: float | None = None,
                     countdown: float | None = None) -> int:
    """The bytes SQS receives when ``app`` sends ``task`` with ``kwargs`` to ``queue``.

    Built as Celery 5.7 and kombu 5.7 build it: Celery's task message (protocol 2), its body
    serialized, then kombu's envelope with the body base64-encoded, the envelope JSON, base64
    again (``sqs_base64_encoding``). Ids are counted at their full length, as if sent from
    inside a task (a parent and root id), so the result is never below the real size;
    ``tests/test_limits.py`` holds it to the size moto receives. Skynet sends no message attributes.
    """
    placeholder = str(uuid.uuid4())
    message = app.amqp.as_task_v2(placeholder, task, (), kwargs, expires=expires, countdown=countdown,
                                  reply_to=app.thread_oid, root_id=placeholder, parent_id=placeholder)
    content_type, content_encoding, body = dumps(message.body, serializer=app.conf.task_serializer)
    raw = body if isinstance(body, bytes) else body.encode(content_encoding or "utf-8")
    envelope = {
        "body": base64.b64encode(raw).decode(), "content-encoding": content_encoding, "content-type": content_type,
        "headers": message.headers,
        "properties": {**message.properties, **(properties or {}), "delivery_mode": 2, "priority": 0,
                       **({"expiration": str(int(expires * 1000))} if expires is not None else {}),
                       "delivery_info": {"exchange": "", "routing_key": queue}, "body_encoding": "base64",
                       "delivery_tag": placeholder},
    }
    text = json_dumps(envelope).encode()
    encoded = app.conf.broker_transport_options.get("sqs_base64_encoding", True)  # kombu's default
    return len(base64.b64encode(text) if encoded else text)


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
        self._send(BUILD_REQUEST_TASK, {"request": request}, names.maintenance_queue(self.env, group),
                   MessageGroupId=group,
                   MessageDeduplicationId=_dedup_id(f"{group}:build:{request.get('rollout_id')}:{attempt}"))
        log.info("build of %s for group %s requested (rollout %s)", request.get("sha"), group,
                 request.get("rollout_id"))

    def maintenance(self, group: str, event: dict[str, Any], dedup: str, lane: str | None = None) -> None:
        """Post a conductor event; ``lane`` names a second message group of the same queue.

        Ticket requests go in their own lane: when a rollout starts, every member asks
        for a ticket at once, and a report (whose step hands the turn on) must not wait
        behind that burst. Steps of the two lanes may then run at the same time; the
        state table's conditional write makes one of them decide again.
        """
        self._send(MAINTENANCE_TASK, {"group": group, "event": event}, names.maintenance_queue(self.env, group),
                   MessageGroupId=f"{group}:{lane}" if lane else group,
                   MessageDeduplicationId=_dedup_id(f"{group}:{dedup}"))

    def to_instance(self, instance_id: str, task: str, kwargs: dict[str, Any], expires: float | None = None,
                    countdown: float | None = None) -> None:
        """Send ``task`` with ``kwargs`` to the instance's own queue, for its work worker (to run ``countdown``
        seconds from now, if given: the worker holds it until then)."""
        self._send(task, kwargs, names.instance_queue(self.env, instance_id), expires=expires, countdown=countdown)

    def to_members(self, group: str, task: str, kwargs: dict[str, Any]) -> None:
        """Send ``task`` with ``kwargs`` to every member of ``group`` whose queue hears the group's topic, in one
        SNS publish (``skynet_tasks.broadcast``). Raises NoBroadcast where this process was not configured with
        the group's topic (kombu would drop the message without a word): the caller sends to each member."""
        exchange = Exchange(names.members_topic(self.env, group), type="fanout")
        options = self.app.conf.broker_transport_options
        if not options.get("supports_fanout") or exchange.name not in options.get("predefined_exchanges", {}):
            raise NoBroadcast(f"this process knows no topic of group {group}: nothing was sent")
        self._check_size(task, kwargs, exchange.name)
        # Declaring a fanout exchange only records it in kombu's channel: no request to SQS or SNS.
        self.app.send_task(task, kwargs=kwargs, exchange=exchange, routing_key=exchange.name, declare=[exchange])

    def _check_size(self, task: str, kwargs: dict[str, Any], destination: str, properties: dict[str, Any] | None = None,
                    expires: float | None = None, countdown: float | None = None) -> None:
        # Every message Skynet sends passes here: the one place its size is checked.
        size = sqs_message_size(self.app, task, kwargs, destination, properties, expires, countdown)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"{task} to {destination} not sent: {size} bytes once encoded, over SQS's limit of "
                                  f"{MAX_MESSAGE_BYTES} (a message carries ids and keys, never contents)")

    def _send(self, task: str, kwargs: dict[str, Any], queue: str, expires: float | None = None,
              countdown: float | None = None, **properties: str) -> None:
        self._check_size(task, kwargs, queue, properties, expires, countdown)
        # Not declared first: declaring asks SQS for the queue's size (GetQueueAttributes), once per queue and
        # connection. A conductor telling 19 members to take a ticket asked 19 times, and most updates'
        # reports asked before their send, on the hand-off's path (87 times for 124 sends to the group's
        # queue in a trace at 20 instances). The message still goes to that queue (Celery sends it through the
        # default exchange with the queue's name), and kombu still creates the queue if it is missing, as
        # declaring did.
        options: dict[str, Any] = {"declare": []}
        if countdown is not None:
            options["countdown"] = countdown
        self.app.send_task(task, kwargs=kwargs, queue=queue, expires=expires, **options, **properties)
