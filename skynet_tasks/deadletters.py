"""Dead letters of the maintenance queues: counting them, showing them, sending them back.

A maintenance event whose step failed ``queues.MAX_RECEIVES`` times is moved by SQS (the queue's
redrive policy) to the group's dead-letter queue, and stays there 14 days. Nothing consumes that
queue: an operator sees its messages (``show``) and, once the cause is fixed, sends them back to
the group's maintenance queue (``redrive``), where a conductor decides them as if they were new.

Trust: a dead letter's body is whatever reached the maintenance queue, so it is parsed only to
describe it, defensively (a body that is not a Celery message is shown as such, never an error),
and nothing in it chooses where it is sent: a redrive sends it back to the queue whose redrive
policy names the dead-letter queue, in the message group SQS recorded for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skynet_tasks import names
from skynet_tasks.queues import Queues

log = logging.getLogger(__name__)

# Seconds a shown message stays hidden should its release fail (then it reappears by itself).
SHOW_VISIBILITY = 10
# Seconds a message being redriven stays hidden: longer than its send and delete can take.
REDRIVE_VISIBILITY = 60
# A long poll of one second: a short poll may sample too few SQS servers and answer empty early.
RECEIVE_WAIT = 1
# At most this many messages per call: a redrive whose messages fail again at once and come back
# must not keep one call going for ever.
MAX_MESSAGES = 1000
MAINT_DLQ_SUFFIX = "-maint-dlq.fifo"


class DeadLetterError(Exception):
    """A group's maintenance queue or its dead-letter queue cannot be found."""


@dataclass(frozen=True)
class DeadLetterCount:
    """How many dead letters one group's maintenance dead-letter queue holds."""

    group: str
    queue: str
    messages: int


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter, described: the task and event it carries, when it was sent, how often received."""

    message_id: str
    task: str | None
    kind: str | None
    rollout_id: str | None
    message_group: str | None
    sent_at: float | None
    receive_count: int


@dataclass
class Redriven:
    """The outcome of a redrive: the dead letters sent back, and those that could not be (with why)."""

    sent: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _task_call(body: str) -> tuple[str | None, dict[str, Any]]:
    """The Celery task name and keyword arguments of an SQS message body kombu wrote; (None, {}) if none."""
    envelope = _json(body)
    if not isinstance(envelope, dict):  # kombu may base64 the whole envelope (sqs_base64_encoding)
        try:
            envelope = _json(base64.b64decode(body, validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            envelope = None
    if not isinstance(envelope, dict):
        return None, {}
    headers = envelope.get("headers")
    task = headers.get("task") if isinstance(headers, dict) and isinstance(headers.get("task"), str) else None
    payload = envelope.get("body")
    if not isinstance(payload, str):
        return task, {}
    try:
        call = _json(base64.b64decode(payload, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError):
        call = _json(payload)
    kwargs = call[1] if isinstance(call, list) and len(call) > 1 else None
    return task, kwargs if isinstance(kwargs, dict) else {}


def describe(message: dict[str, Any]) -> DeadLetter:
    """What a received SQS message (with its system attributes) carries, read from its untrusted body."""
    task, kwargs = _task_call(str(message.get("Body", "")))
    event = kwargs.get("event") if isinstance(kwargs.get("event"), dict) else kwargs.get("request")
    event = event if isinstance(event, dict) else {}
    kind = event.get("type") if "event" in kwargs else ("build_request" if "request" in kwargs else None)
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    return DeadLetter(
        message_id=str(message.get("MessageId", "")),
        task=task,
        kind=str(kind)[:80] if kind is not None else None,
        rollout_id=str(event["rollout_id"])[:80] if event.get("rollout_id") is not None else None,
        message_group=attributes.get("MessageGroupId"),
        sent_at=int(sent) / 1000 if isinstance(sent, str) and sent.isdigit() else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
    )


def dead_letter_counts(queues: Queues, env: str) -> list[DeadLetterCount]:
    """Every maintenance dead-letter queue of ``env``, with its messages (visible, in flight or delayed)."""
    prefix = names.prefix(env)
    out = []
    for name in queues.list(prefix):
        if not name.endswith(MAINT_DLQ_SUFFIX):
            continue
        try:
            depth = queues.depth(name)
        except ClientError:
            continue  # deleted between the listing and the read: it holds nothing any more
        out.append(DeadLetterCount(name[len(prefix):-len(MAINT_DLQ_SUFFIX)], name, sum(depth.values())))
    return out


class DeadLetters:
    """The dead letters of one env's maintenance queues, through one SQS client passed in."""

    def __init__(self, sqs: Any, env: str) -> None:
        self.sqs = sqs
        self.env = env

    def queue_urls(self, group: str) -> tuple[str, str]:
        """The URLs of ``group``'s maintenance queue and of the dead-letter queue its redrive policy names."""
        name = names.maintenance_queue(self.env, group)
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            # SQS leaves out "Attributes" altogether when the queue has none of those asked for.
            policy = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        except ClientError as error:
            raise DeadLetterError(f"group {group}: queue {name} cannot be read: {error}") from None
        target = _json(policy.get("RedrivePolicy", "null"))
        if not isinstance(target, dict) or not isinstance(target.get("deadLetterTargetArn"), str):
            raise DeadLetterError(f"group {group}: queue {name} has no dead-letter queue (no redrive policy)")
        try:
            dlq_url = self.sqs.get_queue_url(QueueName=target["deadLetterTargetArn"].rsplit(":", 1)[-1])["QueueUrl"]
        except ClientError as error:
            raise DeadLetterError(f"group {group}: dead-letter queue of {name} cannot be read: {error}") from None
        return url, dlq_url

    def _receive(self, url: str, visibility: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility, WaitTimeSeconds=RECEIVE_WAIT,
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        return messages

    def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                       for n, m in enumerate(messages[start:start + 10])]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                log.warning("dead letters in %s not released (they reappear by themselves): %s", url, error)

    def show(self, group: str) -> list[DeadLetter]:
        """The dead letters of ``group``'s maintenance queue, left in place (received briefly, then released).

        SQS hands out a FIFO queue's messages of one message group only while none of them is in
        flight, so past ten dead letters in one message group this shows the first ten of it.
        """
        _, dlq_url = self.queue_urls(group)
        held: list[dict[str, Any]] = []
        try:
            while len(held) < MAX_MESSAGES and (batch := self._receive(dlq_url, SHOW_VISIBILITY)):
                held += batch
        finally:
            self._release(dlq_url, held)
        return [describe(message) for message in held]

    def redrive(self, group: str) -> Redriven:
        """Send every dead letter of ``group`` back to its maintenance queue, in order, each with a new
        deduplication id; each is deleted from the dead-letter queue only once its send succeeded.

        A send that fails stops the redrive: that message and the ones received after it stay in the
        dead-letter queue, in their order.
        """
        url, dlq_url = self.queue_urls(group)
        done, seen = Redriven(), set[str]()
        while len(seen) < MAX_MESSAGES and (batch := self._receive(dlq_url, REDRIVE_VISIBILITY)):
            for index, message in enumerate(batch):
                letter = describe(message)
                if letter.message_id in seen:  # redriven, failed again, and back already: once per call
                    self._release(dlq_url, batch[index:])
                    return done
                seen.add(letter.message_id)
                try:
                    self._send_back(url, group, message)
                except (ClientError, BotoCoreError) as error:
                    done.failed.append((letter, str(error)))
                    self._release(dlq_url, batch[index:])
                    return done
                done.sent.append(letter)
                try:
                    self.sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                except (ClientError, BotoCoreError) as error:
                    # Sent twice at worst: a conductor step decides a repeated event as a no-op.
                    log.warning("dead letter %s sent back to %s but not deleted: %s", letter.message_id, url, error)
            log.info("group %s: %d dead letters sent back so far", group, len(done.sent))
        return done

    def _send_back(self, url: str, group: str, message: dict[str, Any]) -> None:
        # A new deduplication id: the old one may still be inside SQS's five-minute window (a quick
        # redrive of a message that failed fast), and SQS would then drop the send without a word.
        request: dict[str, Any] = {
            "QueueUrl": url, "MessageBody": message["Body"], "MessageDeduplicationId": uuid.uuid4().hex,
            "MessageGroupId": message.get("Attributes", {}).get("MessageGroupId") or group,
        }
        if message.get("MessageAttributes"):
            request["MessageAttributes"] = message["MessageAttributes"]
        self.sqs.send_message(**request)
