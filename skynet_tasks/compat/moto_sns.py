"""moto's SNS: a publish reaches every queue still there, whatever became of the others.

moto 5.2 delivers a topic's messages to its SQS subscriptions inside ``Publish``, and a subscription
whose queue was deleted raises ``QueueDoesNotExist`` out of it: the publish fails, and no queue after
that one gets the message. On AWS, SNS delivers after ``Publish`` has answered, each subscription on
its own; a queue that is gone costs its own delivery only. A group's members subscribe their queues to
its topic (``skynet_tasks.broadcast``), and an instance that is gone keeps its subscription until the
operator prunes its queues: here its deleted queue is skipped, as AWS would.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace

log = logging.getLogger(__name__)


def _apply(stack: ExitStack) -> None:
    from moto.sns.models import Subscription
    from moto.sqs.exceptions import QueueDoesNotExist

    def publish(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            moto_publish(self, *args, **kwargs)
        except QueueDoesNotExist:
            log.info("SNS: not delivered to %s, a queue that is gone (subscription %s)", self.endpoint, self.arn)

    moto_publish = replace(stack, Subscription, "publish", publish)


PATCH = Patch("sns_gone_queue", "moto", ">=5.2,<5.3", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
