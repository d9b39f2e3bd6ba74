"""The load balancer stand-in as a library: the lead's cluster feeds it targets through a callable.

It runs on an event loop in a thread of the test, so the test reads its states directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from lbkit import FAST_CHECK, A, B, Instance, instance_pair, wait_until

from skynet_tasks.httpcheck import http_get
from skynet_tasks.local.loadbalancer import HealthCheck, LoadBalancer, Target, TargetState

pytestmark = pytest.mark.timeout(30)


class Running:
    """A LoadBalancer started on its own event loop in a thread."""

    def __init__(self, balancer: LoadBalancer) -> None:
        self.balancer, self.loop = balancer, asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(balancer.start(), self.loop).result(10)

    def get(self) -> tuple[int, str]:
        status, body = http_get(*self.balancer.address, "/", timeout=5)
        return status, body.decode()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.balancer.stop(grace=1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def pair() -> Iterator[tuple[Instance, Instance]]:
    with instance_pair() as started:
        yield started


def test_a_target_whose_check_outlasts_the_timeout_is_unhealthy_and_a_failing_source_keeps_the_targets(pair):
    a, b = pair
    b.health_delay = FAST_CHECK["timeout"] + 0.2  # answers 200, too late
    listed = [Target(A, a.server_port), Target(B, b.server_port)]
    reads = {"fail": False}

    def targets() -> list[Target]:
        if reads["fail"]:
            raise RuntimeError("describe_instances throttled")
        return list(listed)

    running = Running(LoadBalancer(("127.0.0.1", 0), targets, HealthCheck.from_config(FAST_CHECK)))
    try:
        states = running.balancer.states
        wait_until(lambda: states() == {listed[0]: TargetState.HEALTHY, listed[1]: TargetState.UNHEALTHY}, 10,
                   f"A healthy, B unhealthy: {states()}")
        assert {running.get() for _ in range(4)} == {(200, A)}

        reads["fail"] = True
        b.health_delay = 0.0
        wait_until(lambda: states()[listed[1]] == TargetState.HEALTHY, 10, f"B healthy: {states()}")
        assert sorted(running.get()[1] for _ in range(4)) == [A, A, B, B]
    finally:
        running.stop()
