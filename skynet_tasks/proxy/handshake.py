"""An updating instance waits for the proxies to stop routing to it before it restarts its app.

The instance registers as draining, which notifies every proxy; each proxy re-reads the
registry, reloads nginx, and records in its own registry entry the time of that read
(``Endpoint.synced_at``). Once every live proxy has read the registry after the
draining write, no nginx sends new requests to this instance, and its app can stop
without a client seeing an error. The same ordering brings an updated instance back:
it re-registers healthy before it reports, so the next instance's drain (which waits
for a later read) also has the proxies routing to it again.

Trust: ``synced_at`` is written by proxies of the same env; a proxy that never records
it (an older agent, a dead one still within its heartbeat age) only makes the wait run
to its timeout, after which nginx's retry on the next upstream is the remaining guard.
"""

from __future__ import annotations

import logging
import time

from skynet_tasks.context import Context
from skynet_tasks.registration import register_self, tell_proxies
from skynet_tasks.registry import Registry
from skynet_tasks.states import Health

log = logging.getLogger(__name__)

POLL = 0.1


def lagging_proxies(registry: Registry, env: str, since: float, max_age: float) -> list[str]:
    """Live proxies of ``env`` whose running configuration reflects a registry read older than ``since``."""
    return [proxy.instance_id for proxy in registry.live(env, "rp", max_age) if proxy.synced_at < since]


def drain(ctx: Context, last_task: str) -> list[str]:
    """Register this instance draining and wait until no proxy routes to it; return the proxies that lagged.

    The wait counts from the draining write, before any proxy is told: a proxy told of it reads the
    registry after that. Counted from after the telling (as it was), a proxy that synced while the sends
    were still going (one proxy of several, or one CPU the updater shares) read "before", lagged for
    good, and the update waited out ``SKYNET_PROXY_DRAIN_WAIT`` for nothing (half the demo's canaries).
    """
    if not register_self(ctx, health=Health.DRAINING, last_task=last_task, notify=False):
        return []  # already out of the proxies' routing (an operator's drain)
    since = time.time()  # the write is done: a registry read that starts after this sees it
    tell_proxies(ctx)
    return wait_for_proxies(ctx, since)


def wait_for_proxies(ctx: Context, since: float) -> list[str]:
    """Wait (up to ``SKYNET_PROXY_DRAIN_WAIT``) until every live proxy synced after ``since``; return the laggards."""
    s = ctx.settings
    deadline = time.monotonic() + s.proxy_drain_wait
    while True:
        lagging = lagging_proxies(ctx.registry, s.env, since, s.heartbeat_max_age)
        if not lagging:
            return []
        if time.monotonic() >= deadline:
            log.warning("proxies %s did not sync within %.0fs; going on (nginx retries another upstream)",
                        ", ".join(lagging), s.proxy_drain_wait)
            return lagging
        time.sleep(POLL)
