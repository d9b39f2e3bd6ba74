"""kombu's libcurl timer (``skynet_tasks.compat.kombu_curl_timer``), on kombu's real event loop and curl client.

Without the patch, a 5 ms libcurl timer fires after 5 s, and a worker's receives wait for it
(the rollout benchmark's hand-offs carried up to a second each). The first test shows the bug
in the installed kombu: when it fails, kombu fixed it, and the patch can go.
"""

from __future__ import annotations

import time

import pytest
from kombu.asynchronous import Hub
from kombu.asynchronous.http.curl import CurlClient

from skynet_tasks.compat import kombu_curl_timer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client():
    hub = Hub()
    client = CurlClient(hub)
    client.checks = []
    client._timeout_check = lambda: client.checks.append(time.monotonic())  # what libcurl's timer calls
    yield client
    client.close()
    hub.close()


@pytest.fixture
def patched():
    with kombu_curl_timer.PATCH.applied():
        yield


def fire_due_timers(client: CurlClient, after: float) -> None:
    time.sleep(after)
    client.hub.fire_timers(max_timers=100)


def test_still_needed_kombu_alone_takes_a_libcurl_timer_in_seconds(client):
    assert not kombu_curl_timer.PATCH.installed
    client._set_timeout(5)
    fire_due_timers(client, 0.05)
    assert client.checks == []  # kombu's 5 ms timer fires after 5 s


def test_a_libcurl_timer_fires_after_its_milliseconds(patched, client):
    client._set_timeout(5)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1


def test_a_new_libcurl_timer_replaces_the_previous_and_minus_one_cancels(patched, client):
    client._set_timeout(5)
    client._set_timeout(10)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1  # one timer at a time, as libcurl keeps one

    client._set_timeout(5)
    client._set_timeout(-1)
    fire_due_timers(client, 0.05)
    assert len(client.checks) == 1
