"""The queues of instances that are gone: found and deleted by the operator, never by an instance.

Each instance creates its own queue (``skynet-<env>-inst-<id>`` and its dead-letter queue) at
boot, and no instance role may delete a queue (``cloudformation/php-nginx.yaml``): one
compromised instance must not silence the others. The heartbeat's sweep takes a silent
instance out of the registry; its queues are deleted here, with the operator's credentials.

Trusted: the registry and SQS's listing (AWS, under the operator's role). A queue younger
than ``min_age`` is left alone whatever the registry says: an instance creates its queue
before it registers, so a booting instance looks exactly like a gone one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.broadcast import forget_gone_queues
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry

log = logging.getLogger(__name__)

MIN_AGE = 900.0  # seconds: far longer than a boot takes from creating its queue to registering


@dataclass(frozen=True)
class PrunedQueues:
    """What a prune deleted, and what it left because the queue was too young to judge."""

    deleted: tuple[str, ...]
    too_young: tuple[str, ...]


def orphan_instance_queues(queues: Queues, registry: Registry, env: str) -> list[tuple[str, str]]:
    """(queue, instance id) of every instance queue of ``env`` whose instance is not in the registry."""
    prefix = f"{names.prefix(env)}inst-"
    known = {endpoint.instance_id for endpoint in registry.endpoints(env)}
    orphans = []
    for queue in queues.list(prefix):
        if queue.endswith("-dlq"):
            continue  # deleted with its queue
        instance_id = queue[len(prefix):]
        if instance_id not in known:
            orphans.append((queue, instance_id))
    return orphans


def prune_instance_queues(queues: Queues, registry: Registry, env: str, min_age: float = MIN_AGE,
                          now: float | None = None) -> PrunedQueues:
    """Delete the queues (and dead-letter queues) of instances gone from ``env``'s registry."""
    now = time.time() if now is None else now
    deleted, too_young = [], []
    for queue, instance_id in orphan_instance_queues(queues, registry, env):
        if now - queues.created_at(queue) < min_age:
            too_young.append(queue)
            continue
        if queues.delete(queue):
            log.info("deleted the queues of %s, gone from env %s's registry", instance_id, env)
            deleted.append(queue)
    return PrunedQueues(tuple(deleted), tuple(too_young))


def prune_subscriptions(aws: Aws, queues: Queues, env: str) -> list[str]:
    """Unsubscribe the queues that are gone from ``env``'s group topics (``skynet_tasks.broadcast``): a
    subscription outlives its queue, and SNS would go on trying to deliver to it."""
    unsubscribed = forget_gone_queues(aws, env, lambda: set(queues.list(names.prefix(env))))
    for queue in unsubscribed:
        log.info("unsubscribed %s, a queue that is gone, from env %s's group topics", queue, env)
    return unsubscribed
