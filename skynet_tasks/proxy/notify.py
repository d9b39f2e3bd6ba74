"""Telling the proxies that the registry changed, so they sync now rather than at their next poll.

The one path for every sender: an instance whose routing changed (registration, an
update's end, a clean stop) and an operator's drain.
"""

from __future__ import annotations

from skynet_tasks.messages import REGISTRY_CHANGED_TASK, Messenger
from skynet_tasks.registry import Registry

# A proxy that has not synced within a minute of being told has long since polled anyway.
NOTICE_EXPIRES = 60


def notify_proxies(registry: Registry, messenger: Messenger, env: str, max_age: float) -> list[str]:
    """Ask every proxy of ``env`` that beat within ``max_age`` seconds to sync now; return their instance ids."""
    told = []
    for proxy in registry.live(env, "rp", max_age):
        messenger.to_instance(proxy.instance_id, REGISTRY_CHANGED_TASK, {}, expires=NOTICE_EXPIRES)
        told.append(proxy.instance_id)
    return told
