"""The fix for kombu's libcurl timer (``skynet_tasks.curl_timer``), on kombu's real event loop and curl client.

Without it, a 5 ms libcurl timer fires after 5 s, and a worker's receives wait for it
(the rollout benchmark's hand-offs carried up to a second each).
"""

from __future__ import annotations

import time

import pytest
from kombu.asynchronous import Hub
from kombu.asynchronous.http.curl import CurlClient

from skynet_tasks import curl_timer


@pytest.fixture
def client():
    curl_timer.install()
    hub = Hub()
    client = CurlClient(hub)
    client.checks = []
    client._timeout_check = lambda: client.checks.append(time.monotonic())  # what libcurl's timer calls
    yield client
    client.close()
    hub.close()


def fire_due_timers(client: CurlClient, after: float) -> None:
    time.sleep(after)
    client.hub.fire_timers(max_timers=100)


def test_a_libcurl_timer_fires_after_its_milliseconds(client):
    client._set_timeout(5)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1  # kombu 5.7 alone would wait 5 seconds


def test_a_new_libcurl_timer_replaces_the_previous_and_minus_one_cancels(client):
    client._set_timeout(5)
    client._set_timeout(10)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1  # one timer at a time, as libcurl keeps one

    client._set_timeout(5)
    client._set_timeout(-1)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1
