"""The proxy layer inside an instance's worker: nginx started at boot, synced on notification and on a poll."""

from __future__ import annotations

import logging
import threading

from skynet_tasks.context import Context
from skynet_tasks.proxy.nginx import NginxControl
from skynet_tasks.proxy.sync import RpSync
from skynet_tasks.states import Health

log = logging.getLogger(__name__)


def proxy_sync(ctx: Context) -> RpSync:
    """This instance's proxy sync: nginx under ``<root>/rp``, listening on the instance's address and app port."""
    s = ctx.settings
    # nginx listens on the instance's own address (its private one on EC2), not loopback: the load
    # balancer's health check comes from outside the instance.
    control = NginxControl(s.root / "rp", listen_port=s.app_port, listen_address=s.address)
    return RpSync(registry=ctx.registry, env=s.env, max_age=s.heartbeat_max_age, control=control,
                  listen_port=s.app_port, listen_address=s.address, webhook=s.webhook_upstream or None,
                  instance_id=s.instance_id)


def start_proxy(ctx: Context) -> threading.Event:
    """Start nginx with the current registry and the safety-net poll; set the returned event to stop both."""
    sync = proxy_sync(ctx)
    result = sync.start()
    log.info("proxy listening on %s:%d (configuration %s)", ctx.settings.address, ctx.settings.app_port,
             result.sha256[:12])
    stop = threading.Event()
    threading.Thread(target=sync.run, args=(stop, ctx.settings.rp_poll_interval), name="proxy-poll",
                     daemon=True).start()
    return stop


def stop_proxy(ctx: Context, poll: threading.Event) -> None:
    """Stop the poll started by ``start_proxy``, then nginx."""
    poll.set()
    proxy_sync(ctx).control.stop()


def sync_proxy(ctx: Context) -> None:
    """The registry changed: render, validate and reload now (a no-op on instances of other layers)."""
    if ctx.settings.layer == "rp":
        proxy_sync(ctx).sync_once()


def proxy_synced_at(ctx: Context) -> float:
    """When the registry was read for this proxy's running configuration (kept in its heartbeats)."""
    return proxy_sync(ctx).control.synced_at()


def proxy_health(ctx: Context) -> Health:
    """HEALTHY if nginx runs and its last apply succeeded, else UNHEALTHY."""
    control = proxy_sync(ctx).control
    status = control.status()
    return Health.HEALTHY if control.running() and status.get("ok") else Health.UNHEALTHY
