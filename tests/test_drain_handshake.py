"""An updating instance drains: it registers draining, tells the proxies, and waits until each has read the
registry since its draining write, against moto's server over HTTP. The proxies here are stand-ins that sync
when told (the whole path, with nginx and traffic, is in ``test_rollout_cluster`` and ``test_demo``)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from ledgerkit import bootstrapped_moto
from proxykit import endpoint

from skynet_tasks.app import create_app
from skynet_tasks.context import Context
from skynet_tasks.proxy.handshake import drain
from skynet_tasks.registry import Registry
from skynet_tasks.settings import Settings

pytestmark = pytest.mark.timeout(60)


class Proxies:
    """The messenger, as seen by the proxies: each proxy told that the registry changed reads it and marks itself
    synced at once, before the send returns (a fast proxy, or an updater descheduled after its send); a proxy
    in ``silent`` never syncs. What each read saw of the updating instance is kept in ``saw``."""

    def __init__(self, registry: Registry, watched: str, silent: tuple[str, ...] = ()) -> None:
        self.registry, self.watched, self.silent = registry, watched, silent
        self.saw: list[tuple[str, str]] = []

    def to_instance(self, instance_id: str, task: str, kwargs: dict[str, Any], **_: Any) -> None:
        if instance_id in self.silent:
            return
        read_at = time.time()
        entry = next(e for e in self.registry.endpoints("local") if e.instance_id == self.watched)
        self.saw.append((instance_id, entry.health))
        self.registry.mark_synced("local", "rp", instance_id, read_at)
        time.sleep(0.05)  # the updater carries on a moment later


@pytest.fixture(scope="module")
def aws():
    with bootstrapped_moto(["local-api"]) as (_, aws):
        yield aws


def updating_instance(aws: Any, root: Any, instance_id: str) -> Context:
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_LAYER": "api", "SKYNET_INSTANCE_ID": instance_id,
                                  "SKYNET_ROOT": str(root), "SKYNET_ADDRESS": "127.0.0.1", "SKYNET_APP_PORT": "9",
                                  "SKYNET_PROXY_DRAIN_WAIT": "1"})
    return Context.create(settings, create_app(), aws)


def test_a_proxy_that_syncs_as_soon_as_it_is_told_is_not_waited_for(aws, tmp_path):
    # Given an API instance in service and two proxies that sync as soon as they are told
    ctx = updating_instance(aws, tmp_path, "api-1")
    ctx.registry.register("local", "api", endpoint("api-1", 9))
    for proxy in ("rp-1", "rp-2"):
        ctx.registry.register("local", "rp", endpoint(proxy, 80))
    proxies = Proxies(ctx.registry, "api-1")
    ctx = dataclasses.replace(ctx, messenger=proxies)

    # When it drains for its update
    lagging = drain(ctx, "update r1#1")

    # Then each proxy read the registry with the instance draining, and none is counted as lagging
    # (counted from after the telling, both were, and the update waited out SKYNET_PROXY_DRAIN_WAIT)
    assert proxies.saw == [("rp-1", "draining"), ("rp-2", "draining")]
    assert lagging == []


def test_a_proxy_that_never_syncs_is_waited_for_until_the_drain_wait_and_named(aws, tmp_path):
    ctx = updating_instance(aws, tmp_path, "api-2")
    ctx.registry.register("local", "api", endpoint("api-2", 9))
    ctx.registry.register("local", "rp", endpoint("rp-3", 80))
    live = [proxy.instance_id for proxy in ctx.registry.live("local", "rp", 60)]
    ctx = dataclasses.replace(ctx, messenger=Proxies(ctx.registry, "api-2", silent=tuple(live)))

    assert drain(ctx, "update r1#2") == live and "rp-3" in live


def test_an_instance_already_out_of_the_proxies_routing_tells_and_waits_for_nobody(aws, tmp_path):
    ctx = updating_instance(aws, tmp_path, "api-3")
    proxies = Proxies(ctx.registry, "api-3")
    ctx = dataclasses.replace(ctx, messenger=proxies)
    ctx.registry.register("local", "rp", endpoint("rp-4", 80))
    assert drain(ctx, "update r1#3") == []  # its first draining write tells them
    told = list(proxies.saw)
    assert ("rp-4", "draining") in told

    assert drain(ctx, "update r1#4") == []  # already draining: nothing changed for the proxies
    assert proxies.saw == told
