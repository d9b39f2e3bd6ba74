"""This instance's entry in the registry (the endpoints table): its health, and keeping it fresh.

What the proxies route to comes from here: address, port, release and health. An
entry that changed what they route to tells them at once (``proxy.notify``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from skynet_tasks import __version__, buildspec
from skynet_tasks.broadcast import hears_group
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.context import Context
from skynet_tasks.httpcheck import healthy
from skynet_tasks.proxy.notify import notify_proxies
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import Health

log = logging.getLogger(__name__)


@contextmanager
def keep_registered(ctx: Context, task: str, health: Health | None = None,
                    also: Callable[[], object] | None = None) -> Iterator[None]:
    """Refresh this instance's registration while a long task runs (and call ``also`` as often).

    Heartbeats skip a worker that holds a task, so without this a long build or
    update would look like a dead instance to the conductor. ``also``: what else must be
    kept fresh at the same pace (a build renews the lease of its claim).
    """
    stop = threading.Event()

    def beat() -> None:
        refreshes = [*([also] if also else []), lambda: register_self(ctx, health=health, last_task=task)]
        while not stop.wait(ctx.settings.heartbeat_interval):
            for refresh in refreshes:
                try:
                    refresh()
                except Exception:  # noqa: BLE001 - a missed refresh must not break the task
                    log.exception("a refresh during %s failed", task)

    thread = threading.Thread(target=beat, name="keep-registered", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


# The longest last outcome (``failed: <error>``) an entry keeps.
OUTCOME_LIMIT = 300


def probe_health(ctx: Context) -> Health:
    """This instance's health as its app's health check sees it (an operator's drain is ``own_entry``'s)."""
    layout = ctx.layout
    if ctx.settings.layer == "rp":
        from skynet_tasks.proxy.runtime import proxy_health

        return proxy_health(ctx)
    if layout.current_release() is None:
        return Health.EMPTY
    try:
        spec = buildspec.load_buildspec(layout.current / "skynet.yml")
    except buildspec.BuildSpecError:
        return Health.UNHEALTHY
    if spec.health and spec.health.http:
        answers = healthy(ctx.settings.address, ctx.settings.app_port, spec.health.http)
        return Health.HEALTHY if answers else Health.UNHEALTHY
    return Health.HEALTHY if ctx.services().running() or not spec.service else Health.UNHEALTHY


def register_self(ctx: Context, health: Health | None = None, last_task: str = "", last_outcome: str = "",
                  notify: bool = True) -> bool:
    """Refresh this instance's registry entry; True when what the proxies route to changed.

    Then the proxies are told at once, unless ``notify`` is False (the caller tells them).
    """
    endpoint = own_entry(ctx, health, last_task, last_outcome)
    ctx.registry.register(ctx.settings.env, ctx.settings.layer, endpoint)
    return entry_written(ctx, endpoint, notify)


def own_entry(ctx: Context, health: Health | None = None, last_task: str = "", last_outcome: str = "") -> Endpoint:
    """This instance's registry entry as of now (its health probed unless ``health`` is given).

    An operator's drain outlasts any health the caller checked: only the operator undoes it (an
    update's report said healthy from its own health check, and put a drained instance back in service).
    """
    s = ctx.settings
    if ctx.layout.drain_flag.exists():
        health = Health.DRAINING
    return Endpoint(
        instance_id=s.instance_id, group=s.group, address=s.address, port=s.app_port,
        release=ctx.layout.current_release() or "", health=str(health or probe_health(ctx)),
        heartbeat=time.time(), agent_version=__version__,
        config_version=ConfigDir(s.config_dir).current_version() or "", last_task=last_task,
        # Cut: the entry shares one registry item with the whole layer's (``docs/aws.md``, "Limits").
        last_outcome=last_outcome[:OUTCOME_LIMIT],
        synced_at=_proxy_synced_at(ctx), hears_group=hears_group(ctx.layout.run_dir))


def entry_written(ctx: Context, endpoint: Endpoint, notify: bool = True) -> bool:
    """After ``endpoint`` was written: True when what the proxies route to changed (told at once if ``notify``)."""
    # Tasks run in the worker's pool process and heartbeats in its main one: the last
    # routing-relevant state is kept in a file, so both see the same.
    routed = f"{endpoint.address}:{endpoint.port} {endpoint.health} {endpoint.release}"
    marker = ctx.layout.run_dir / "registered"
    try:
        previous = marker.read_text()
    except OSError:
        previous = ""
    if routed != previous and ctx.settings.layer != "rp":
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(routed)
        if notify:
            tell_proxies(ctx)
        return True
    return False


def tell_proxies(ctx: Context) -> None:
    """Ask every live proxy of this instance's env to sync now (their slow poll would catch up anyway)."""
    notify_proxies(ctx.registry, ctx.messenger, ctx.settings.env, ctx.settings.heartbeat_max_age)


def _proxy_synced_at(ctx: Context) -> float:
    if ctx.settings.layer != "rp":
        return 0.0
    from skynet_tasks.proxy.runtime import proxy_synced_at

    return proxy_synced_at(ctx)
