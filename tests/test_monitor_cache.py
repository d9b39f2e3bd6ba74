"""Queue depths cost at most one SQS call per queue per 30 s, whatever the number of scrapes, tabs and threads;
the change token the pages wait on moves with the env; undrain from the dashboard; and in headless Chromium,
a visible tab refreshes when the env changes while a hidden one sends nothing.

Against moto's server with a seeded env (tests/monitorkit.py); SQS calls are counted with
botocore's event hooks on the dashboard's own client, so every call the dashboard makes is seen.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from browserkit import headless_chromium
from clusterkit import sender_for
from monitorkit import GROUP, TOKEN, Seeded, same_origin_headers, seeded_env
from werkzeug.serving import make_server

from skynet_tasks import names
from skynet_tasks.deadletters import dead_letter_counts
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.monitor.data import MonitorData
from skynet_tasks.monitor.queue_cache import QueueCache, QueuesUnreadable
from skynet_tasks.queues import Queues, instance_queue
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(120)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SqsCalls:
    """Counts the SQS operations a client makes, by name."""

    def __init__(self, client: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        client.meta.events.register("before-call.sqs", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.counts[model.name] += 1

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


@pytest.fixture(scope="module")
def env() -> Iterator[Seeded]:
    with seeded_env() as seeded:
        for instance in ("api-1", "api-2"):  # each with its dead-letter queue: six queues in all
            Queues(seeded.aws.sqs).ensure(instance_queue("local", instance))
        yield seeded


@pytest.fixture()
def calls(env: Seeded) -> SqsCalls:
    return SqsCalls(env.aws.sqs)


def empty(env: Seeded, url: str) -> None:
    """Delete the queue's messages (PurgeQueue is allowed once a minute)."""
    while messages := env.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            env.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def queue_count(env: Seeded) -> int:
    return len(Queues(env.aws.sqs).list(names.prefix("local")))


def test_many_scrapes_and_page_views_within_30_seconds_cost_one_call_per_queue(env, calls):
    client = env.app.test_client()
    queues = queue_count(env)
    calls.reset()
    for _ in range(5):
        assert client.get("/metrics").status_code == 200
        assert client.get("/queues?partial=1").status_code == 200
        assert client.get("/api/queues").status_code == 200
        assert client.get("/groups?partial=1").status_code == 200  # the dead-letter banner reads depths too
    assert queues == 6
    assert calls.counts["GetQueueAttributes"] <= queues
    assert calls.counts["ListQueues"] <= 1
    assert calls.counts["GetQueueUrl"] == 0


def test_threads_reading_at_once_share_one_read(env, calls):
    cache = QueueCache(env.aws.sqs, "local", ttl=30.0, clock=Clock())
    queues = queue_count(env)
    calls.reset()
    barrier = threading.Barrier(8)
    results: list[int] = []

    def read() -> None:
        barrier.wait(10)
        results.append(len(cache.snapshot().depths))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [queues] * 8
    assert calls.counts == {"ListQueues": 1, "GetQueueAttributes": queues}


def test_depths_are_read_again_once_30_seconds_old_and_show_new_messages(env, calls):
    clock = Clock()
    cache = QueueCache(env.aws.sqs, "local", ttl=30.0, clock=clock)
    queue = names.maintenance_queue("local", GROUP).replace(".fifo", "-dlq.fifo")
    first = cache.snapshot()
    url = env.aws.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    env.aws.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId=GROUP, MessageDeduplicationId="cache-1")
    try:
        clock.now += 29.9
        assert cache.snapshot() is first  # not yet: the message is not seen
        calls.reset()
        clock.now += 0.1
        second = cache.snapshot()
        assert second.depths[queue]["visible"] == 1 and second.generation == first.generation + 1
        assert calls.counts["GetQueueAttributes"] == queue_count(env)
    finally:
        empty(env, url)


def test_the_dead_letter_banner_counts_what_sqs_counts(env):
    queue = names.maintenance_queue("local", GROUP).replace(".fifo", "-dlq.fifo")
    url = env.aws.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    env.aws.sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId=GROUP, MessageDeduplicationId="banner-1")
    try:
        data = monitor_of(env.app)
        data.queue_cache = QueueCache(env.aws.sqs, "local")  # a fresh cache: the message is seen now
        assert data.dead_letters() == dead_letter_counts(Queues(env.aws.sqs), "local")
        assert [c.messages for c in data.dead_letters() if c.group == GROUP] == [1]
        page = env.app.test_client().get("/groups?partial=1")
        assert b"Dead letters:" in page.data and f"group {GROUP} has 1 maintenance event".encode() in page.data
    finally:
        empty(env, url)
        monitor_of(env.app).queue_cache = QueueCache(env.aws.sqs, "local")


def monitor_of(app: Any) -> MonitorData:
    data = app.extensions["skynet_monitor"]
    assert isinstance(data, MonitorData)
    return data


class FailingSqs:
    """An SQS client whose listing fails (AccessDenied), counting the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def get_paginator(self, name: str) -> Any:
        self.attempts += 1
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListQueues")


def test_a_failed_read_is_not_retried_before_30_seconds():
    clock, sqs = Clock(), FailingSqs()
    cache = QueueCache(sqs, "local", ttl=30.0, clock=clock)
    for _ in range(10):
        with pytest.raises(QueuesUnreadable, match="AccessDenied"):
            cache.snapshot()
    assert sqs.attempts == 1 and cache.generation() == -1
    clock.now += 30
    with pytest.raises(QueuesUnreadable):
        cache.snapshot()
    assert sqs.attempts == 2


def test_unreadable_queues_show_the_banner_and_a_503_not_a_server_error(env):
    data = monitor_of(env.app)
    data.queue_cache = QueueCache(FailingSqs(), "local")
    try:
        client = env.app.test_client()
        page = client.get("/groups?partial=1")
        assert page.status_code == 200 and b"Dead-letter queues could not be read" in page.data
        answer = client.get("/api/queues")
        assert answer.status_code == 503 and "AccessDenied" in answer.get_json()["error"]
        assert client.get("/metrics").status_code == 200  # what it holds then is metrics.py's (collector up/down)
    finally:
        data.queue_cache = QueueCache(env.aws.sqs, "local")


def test_an_undrain_from_the_dashboard_puts_the_instance_back_and_is_recorded(env):
    client = env.app.test_client()
    headers = {**same_origin_headers(), "Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/instances/api-1/drain", headers=headers).status_code == 202
    assert env.registry.find("local", "api-1")[1].health == "draining"
    answer = client.post("/api/instances/api-1/undrain", headers=headers)
    assert answer.status_code == 202 and answer.get_json()["action"] == "undrain"
    assert [a["action"] for a in env.ledger.actions(GROUP, 2)] == ["undrain", "drain"]
    assert client.post("/api/instances/no-such-1/undrain", headers=headers).status_code == 409


def test_the_change_token_moves_with_the_ledger_the_registry_and_the_dashboards_own_actions(env):
    client = env.app.test_client()
    token = client.get("/api/changes").get_json()["token"]
    assert client.get(f"/api/changes?since={token}&wait=0").get_json() == {"token": token, "retry_ms": 0}
    # An action through this dashboard: every waiting tab learns of it at once.
    headers = {**same_origin_headers(), "Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/instances/api-2/drain", headers=headers).status_code == 202
    after_drain = client.get(f"/api/changes?since={token}&wait=0").get_json()["token"]
    assert after_drain != token
    # A conductor decision elsewhere (the group's version grows): seen within the probe interval.
    env.ledger.ensure_group(GROUP, "/srv/sample-app.git", "main")
    env.ledger.db.update_item(TableName=env.ledger.table, Key={"pk": {"S": f"group#{GROUP}"}, "sk": {"S": "group"}},
                           UpdateExpression="ADD version :one", ExpressionAttributeValues={":one": {"N": "1"}})
    moved = client.get(f"/api/changes?since={after_drain}&wait=5").get_json()["token"]
    assert moved != after_drain
    # A heartbeat alone changes nothing a page shows but ages: no change.
    endpoint = env.registry.find("local", "api-1")[1]
    env.registry.register("local", "api", endpoint.__class__(**{**endpoint.__dict__, "heartbeat": time.time()}))
    assert client.get(f"/api/changes?since={moved}&wait=3").get_json()["token"] == moved


def test_odd_since_and_wait_values_are_answered_not_errors(env):
    client = env.app.test_client()
    for query in ("since=" + "x" * 5000, "wait=-1", "wait=abc", "wait=99999&since=zz", "since=%00%ff"):
        started = time.monotonic()
        answer = client.get(f"/api/changes?{query}")
        assert answer.status_code == 200 and "token" in answer.get_json(), query
        assert time.monotonic() - started < 27


# ---- in headless Chromium: a visible tab refreshes on change, a hidden one sends nothing ----------------
class RequestLog:
    """A WSGI wrapper that keeps the path and query of every request, in order."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self.lock:
            self.seen.append(f"{environ['PATH_INFO']}?{environ.get('QUERY_STRING', '')}")
        return self.app(environ, start_response)

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.seen[start:]


@pytest.fixture()
def served(env: Seeded) -> Iterator[tuple[str, RequestLog]]:
    app = create_app(resolve(env.aws, "local"), env.aws, sender_for(env.environment).app, Auth(TOKEN),
                     max_age=600.0, poll_seconds=0.2, allowed_hosts=("127.0.0.1", "localhost"))
    requests = RequestLog(app.wsgi_app)
    app.wsgi_app = requests  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    thread.join(5)


@pytest.fixture()
def changing(env: Seeded) -> Iterator[None]:
    """The env changing every 0.3 s (api-1 draining, then healthy, then draining...) until the test ends."""
    stop = threading.Event()

    def flip() -> None:
        healths = ("draining", "healthy")
        n = 0
        while not stop.wait(0.3):
            env.registry.set_health("local", "api", "api-1", healths[n % 2])
            n += 1

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def partials(paths: list[str]) -> int:
    return sum(p.startswith("/instances?") and "partial=1" in p for p in paths)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_hidden_tab_makes_no_requests_and_refreshes_when_shown_again(served, changing):
    url, requests = served
    with headless_chromium("--window-size=1280,900") as browser:
        browser.get(f"{url}/instances")
        dashboard = browser.current_window_handle
        # Visible: the page follows the changes (several partial fetches while the env changes).
        start = requests.count()
        wait_for(lambda: partials(requests.since(start)) >= 3, 20, "a visible tab refreshing on change")
        assert browser.execute_script("return document.visibilityState") == "visible"

        # Hidden behind another tab: from the moment it knows, not one request.
        browser.switch_to.new_window("tab")
        browser.get("about:blank")
        time.sleep(1.0)  # a request already on its way when the tab was hidden may still arrive
        quiet_from = requests.count()
        time.sleep(4.0)  # 13 changes of the env, each of which a visible tab would fetch
        assert requests.since(quiet_from) == []

        # Shown again: it refreshes at once and follows the changes again.
        browser.switch_to.window(dashboard)
        assert browser.execute_script("return document.visibilityState") == "visible"
        back = requests.count()
        wait_for(lambda: partials(requests.since(back)) >= 2, 20, "the tab refreshing once shown again")
