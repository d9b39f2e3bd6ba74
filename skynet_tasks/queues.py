"""SQS queues: creating them (idempotently, each with its dead-letter queue) and reading their depth.

Messages themselves are sent through Celery (``skynet_tasks.messages``); this
module only manages the queues.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks import names

log = logging.getLogger(__name__)

# After this many receives a message goes to the dead-letter queue: a task that
# crashes its worker every time must not block the queue for ever.
MAX_RECEIVES = 5


@dataclass(frozen=True)
class QueueSpec:
    """A queue to create: its name, visibility timeout in seconds, whether it is FIFO, and its policy (JSON)."""

    name: str
    visibility_timeout: int
    fifo: bool = False
    policy: str | None = None  # an instance queue's: its group's topic may deliver to it (``broadcast``)

    @property
    def dead_letter(self) -> str:
        """The name of the queue's dead-letter queue."""
        return names.dead_letter_queue(self.name)


# Visibility timeouts sit above the hard time limit of the tasks on each queue
# (see skynet_tasks.tasks), so a running task is never handed to a second worker.
# Short: a message swallowed by a conductor that died mid-receive blocks its FIFO group this long.
MAINTENANCE_VISIBILITY = 20
# An instance's own queue carries its updates (hard limit 600 s) and builds. A build may run longer
# (``tasks.build.BUILD_HARD_LIMIT``, for a skynet.yml's longest build_timeout): its message may then come
# back to the same worker, its queue's only reader, which runs it once the build has ended and finds the
# rollout no longer building. Meanwhile the build's claim, renewed at every heartbeat, keeps any other
# member from building the commit.
INSTANCE_VISIBILITY = 900


def group_queues(env: str, group: str) -> list[QueueSpec]:
    """The queues a group needs: its FIFO maintenance queue."""
    return [QueueSpec(names.maintenance_queue(env, group), MAINTENANCE_VISIBILITY, fifo=True)]


def instance_queue(env: str, instance_id: str) -> QueueSpec:
    """The queue of one instance, which carries its builds and updates."""
    return QueueSpec(names.instance_queue(env, instance_id), INSTANCE_VISIBILITY)


class Queues:
    """The SQS side of Skynet: one client, passed in."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs

    def ensure(self, spec: QueueSpec) -> str:
        """Create the queue and its dead-letter queue if missing; return the queue's URL."""
        base = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if spec.fifo else {}
        dlq_url = self.sqs.create_queue(QueueName=spec.dead_letter,
                                        Attributes={**base, "MessageRetentionPeriod": "1209600"})["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {
            **base,
            "VisibilityTimeout": str(spec.visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
            **({"Policy": spec.policy} if spec.policy else {}),
        }
        try:
            url: str = self.sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            # It exists with other attributes (an older Skynet made it): bring it up to date, where
            # allowed. An instance's role may not set queue attributes (a queue policy is one), so
            # an instance uses its queue as it is; ``skynet bootstrap`` updates it.
            url = self.sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
            try:
                self.sqs.set_queue_attributes(QueueUrl=url, Attributes={
                    k: v for k, v in attributes.items() if k not in ("FifoQueue", "ContentBasedDeduplication")})
            except ClientError as refused:
                if refused.response["Error"]["Code"] not in ("AccessDenied", "AccessDeniedException"):
                    raise
                log.warning("queue %s has other attributes than this version's, and this role may not "
                            "change them: used as it is", spec.name)
        return url

    def delete(self, name: str) -> bool:
        """Delete a queue and its dead-letter queue; False if it did not exist."""
        deleted = False
        for queue in (name, names.dead_letter_queue(name)):
            try:
                url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            except ClientError:
                continue
            self.sqs.delete_queue(QueueUrl=url)
            deleted = True
        return deleted

    def created_at(self, name: str) -> float:
        """When the queue was created, in seconds since the epoch."""
        url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["CreatedTimestamp"])["Attributes"]
        return float(attrs["CreatedTimestamp"])

    def list(self, prefix: str) -> list[str]:
        """The names of the queues whose name starts with ``prefix``."""
        urls: list[str] = []
        paginator = self.sqs.get_paginator("list_queues")
        for page in paginator.paginate(QueueNamePrefix=prefix):
            urls += page.get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def depth(self, name: str) -> dict[str, int]:
        """Visible, in-flight and delayed message counts of a queue."""
        url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }
