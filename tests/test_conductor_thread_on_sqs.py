"""The conductor's own thread (``workers.conductor.Conductor``) receiving from a real queue on moto's server,
beside an event loop that never runs (as the worker's, busy with something else): each message run on the thread
and deleted once settled, a group's queued ticket requests received at once and decided in one step, the step in
hand finished when it stops, a thread that ended unexpectedly started again by the heartbeat, and a FIFO group's
next message handed out while the step before still tells the members (``trailing``).
"""

from __future__ import annotations

import threading
import time

import pytest
from celery import Celery
from inprocesskit import conductor_app, report, ticket
from kombu.asynchronous import Hub, get_event_loop, set_event_loop
from ledgerkit import requests_made, sqs_on_moto

from skynet_tasks.messages import MAINTENANCE_TASK
from workers.conductor import Conductor


@pytest.fixture
def app() -> Celery:
    return conductor_app()


@pytest.fixture(scope="module")
def sqs_server():
    with sqs_on_moto() as sqs:
        yield sqs


@pytest.fixture
def broker(app, sqs_server, request):
    """A queue of this test's own on moto's server, and the app's broker pointing there: (client, url, name)."""
    name = f"skynet-test-conductor-{abs(hash(request.node.name)) % 10**8}"
    url = sqs_server.create_queue(QueueName=name)["QueueUrl"]
    app.conf.broker_url = "sqs://"
    app.conf.broker_transport_options = {"wait_time_seconds": 1, "polling_interval": 0}
    return sqs_server, url, name


@pytest.fixture
def busy_event_loop():
    """The process's event loop, as the worker's main thread sets it, never run here (busy elsewhere)."""
    before = get_event_loop()
    hub = set_event_loop(Hub())
    yield hub
    set_event_loop(before)


def messages_left(sqs, url) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.timeout(60)
def test_the_conductor_runs_each_message_on_its_own_thread_while_the_event_loop_is_busy(app, broker,
                                                                                        busy_event_loop):
    sqs, url, queue = broker
    warmed: list[str] = []
    conductor = Conductor(app, queue, warm_up=lambda: warmed.append(threading.current_thread().name))
    conductor.start()
    try:
        for n in range(2):
            app.send_task(MAINTENANCE_TASK, kwargs={"group": "g", "event": {"n": n}}, queue=queue)

        deadline = time.monotonic() + 20
        while len(app.ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        conductor.stop(timeout=5)

    assert app.ran == [("g", {"n": 0}), ("g", {"n": 1})] or sorted(e["n"] for _, e in app.ran) == [0, 1]
    assert app.threads == ["conductor", "conductor"]
    # Warmed up on the thread that started it (the worker's main thread, which forks the pool child), not its own
    assert warmed == [threading.current_thread().name]
    assert not busy_event_loop._ready and not busy_event_loop.timer.queue  # nothing handed to the loop
    deadline = time.monotonic() + 10
    while messages_left(sqs, url) and time.monotonic() < deadline:  # acknowledged: deleted from the queue
        time.sleep(0.1)
    assert messages_left(sqs, url) == 0


@pytest.mark.timeout(60)
def test_the_conductor_receives_a_groups_queued_ticket_requests_at_once_and_decides_them_in_one_step(app, broker):
    sqs, _, name = broker
    queue = f"{name}.fifo"  # as a group's maintenance queue: FIFO, ticket requests in a message group of their own
    url = sqs.create_queue(QueueName=queue, Attributes={"FifoQueue": "true"})["QueueUrl"]
    for n, body in enumerate([ticket("g", "i1"), ticket("g", "i2"), report("g", 1), ticket("g", "i3")]):
        lane = "g:tickets" if body[1]["event"]["type"] == "ticket_taken" else "g"
        app.send_task(MAINTENANCE_TASK, kwargs=body[1], queue=queue, MessageGroupId=lane,
                      MessageDeduplicationId=f"m{n}")
    conductor = Conductor(app, queue)

    with requests_made("conductor") as requests:  # the conductor's thread's
        conductor.start()
        try:
            deadline = time.monotonic() + 20
            while sum(1 + len(step[2]) if len(step) == 3 else 1 for step in app.ran) < 4 \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            conductor.stop(timeout=5)

    assert app.ran == [("g", report("g", 1)[1]["event"]),
                       ("g", ticket("g", "i1")[1]["event"], [ticket("g", n)[1]["event"] for n in ("i2", "i3")])]
    assert app.threads == ["conductor", "conductor"]  # held at once, run one after the other on one thread
    deadline = time.monotonic() + 10
    while messages_left(sqs, url) and time.monotonic() < deadline:  # every one acknowledged
        time.sleep(0.1)
    assert messages_left(sqs, url) == 0
    # the report's delete, then the three requests' in one
    assert [r for r in requests if r.startswith("DeleteMessage")] == ["DeleteMessage", "DeleteMessageBatch"]


@pytest.mark.timeout(60)
def test_stopping_the_conductor_lets_the_step_in_hand_finish_and_settle(app, broker):
    sqs, url, queue = broker
    conductor = Conductor(app, queue)
    conductor.start()
    app.send_task(MAINTENANCE_TASK, kwargs={"group": "g", "event": {"sleep": 0.4}}, queue=queue)
    deadline = time.monotonic() + 20
    while not app.ran and time.monotonic() < deadline:
        time.sleep(0.01)

    conductor.stop(timeout=10)  # the step sleeps 0.4 s (its limit is 0.5 s)

    assert app.ran and conductor.idle.is_set()
    deadline = time.monotonic() + 10
    while messages_left(sqs, url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert messages_left(sqs, url) == 0


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's end, on purpose
def test_a_conductor_whose_thread_ended_unexpectedly_is_started_again_by_the_heartbeat(app):
    connections: list[float] = []

    def connect():
        connections.append(time.monotonic())
        if len(connections) == 1:
            raise KeyboardInterrupt  # what the thread does not expect: it ends
        raise ConnectionError("no broker here")  # expected: it waits and connects again, alive

    conductor = Conductor(app, "q", connect=connect)
    conductor.start()
    assert conductor.thread is not None
    conductor.thread.join(5)
    assert not conductor.thread.is_alive()

    revived = conductor.revive()

    time.sleep(0.5)
    assert revived and conductor.thread.is_alive() and len(connections) == 2
    assert not conductor.revive()  # alive: nothing to do
    conductor.stop(timeout=1)
    assert not conductor.revive()  # stopped on purpose: not started again


@pytest.mark.timeout(60)
def test_a_groups_next_message_is_handed_out_while_the_step_before_still_tells_the_members(app, broker):
    sqs, _, name = broker
    queue = f"{name}-trailing.fifo"  # one FIFO message group: its next message waits until the one before is deleted
    sqs.create_queue(QueueName=queue, Attributes={"FifoQueue": "true"})
    app.tasks[MAINTENANCE_TASK].time_limit = 8  # (the fixture's 0.5 s would stop the sends below)
    next_ran = threading.Event()

    def telling_the_members() -> None:  # the first step's trailing sends, taking until the group's next step ran
        app.send_task(MAINTENANCE_TASK, kwargs={"group": "g", "event": {"n": "next"}}, queue=queue,
                      MessageGroupId="g", MessageDeduplicationId="next")
        app.ran.append(("trailing", next_ran.wait(6)))

    app.trail = telling_the_members
    app.send_task(MAINTENANCE_TASK, kwargs={"group": "g", "event": {"trail": True}}, queue=queue, MessageGroupId="g",
                  MessageDeduplicationId="first")
    members = [Conductor(app, queue, visibility=30), Conductor(app, queue, visibility=30)]  # two of the group
    for member in members:
        member.start()
    deadline = time.monotonic() + 30
    try:
        while len(app.ran) < 3 and time.monotonic() < deadline:
            if ("g", {"n": "next"}) in app.ran:
                next_ran.set()
            time.sleep(0.01)
    finally:
        for member in members:
            member.stop(timeout=5)

    assert app.ran == [("g", {"trail": True}), ("g", {"n": "next"}), ("trailing", True)]
    assert app.threads == ["conductor", "conductor"]
