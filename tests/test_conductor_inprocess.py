"""The conductor in the worker's main process (workers/conductor.py): each message run in place and settled.

A Celery app with no broker stands for the worker's; the messages are kombu-like objects that record
how they were settled, because what the queue then does with them (redelivery after the visibility
timeout, the dead-letter queue after 5 receives) is kombu's and SQS's, tested in test_deadletters.py.
The conductor's own thread is shown receiving from a real queue on moto's server, beside an event
loop that never runs (as the worker's, busy with something else). A receive of several messages
(``run_received``) runs every message but the ticket requests first, each alone, then each group's
ticket requests as one step, and settles a batch's messages together. What a step leaves until its
messages are settled (``trailing``) runs after they are, and the FIFO group's next message is handed out
meanwhile.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from kombu.asynchronous import Hub, get_event_loop, set_event_loop
from ledgerkit import requests_made, sqs_on_moto

from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.trailing import after_settled
from workers.conductor import Conductor, run_message, run_received
from workers.hard_limit import StepTimeout, hard_limit


@dataclass
class Message:
    """A received message: its task header, and how the conductor settled it."""

    task: str
    settled: list[str] = field(default_factory=list)
    delivery_info: dict[str, Any] = field(default_factory=dict)  # kombu's, as a transport without SQS's fills it
    channel: Any = None
    log: list[tuple[str, str]] | None = None  # shared by a receive's messages: (message, how settled), in order
    name: str = ""

    @property
    def headers(self) -> dict[str, Any]:
        return {"task": self.task}

    def ack(self) -> None:
        self.settled.append("ack")
        if self.log is not None:
            self.log.append((self.name, "ack"))

    def reject(self, requeue: bool) -> None:
        self.settled.append(f"reject(requeue={requeue})")
        if self.log is not None:
            self.log.append((self.name, "reject"))


@pytest.fixture
def app() -> Celery:
    app = Celery("conductor-test", set_as_current=False)
    app.ran = []  # type: ignore[attr-defined]
    app.threads = []  # type: ignore[attr-defined]

    class Maintenance(app.Task):  # type: ignore[name-defined]
        name, time_limit, acks_on_failure_or_timeout = MAINTENANCE_TASK, 0.5, False

        def run(self, group: str, event: dict[str, Any], then: list[dict[str, Any]] | None = None) -> None:
            app.ran.append((group, event) if then is None else (group, event, then))  # type: ignore[attr-defined]
            app.threads.append(threading.current_thread().name)  # type: ignore[attr-defined]
            if event.get("sleep"):  # a step of many short calls, as a step's AWS requests are
                for _ in range(int(event["sleep"] * 20)):
                    time.sleep(0.05)
            if event.get("trail"):  # work left until the step's messages are settled
                after_settled(app.trail)  # type: ignore[attr-defined]
            if event.get("fail"):
                raise RuntimeError("the step failed")

    class BuildRequest(app.Task):  # type: ignore[name-defined]
        name, acks_on_failure_or_timeout = BUILD_REQUEST_TASK, True

        def run(self, fail: bool) -> None:
            raise RuntimeError("an acknowledged failure")

    # Registered over whatever the app holds once finalized: Skynet's own tasks are shared (Celery adds
    # them to every app it finalizes), so once another test imported them, they would hold these names.
    app.finalize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Celery warns that a name is taken over: here, on purpose
        for task in (Maintenance, BuildRequest):
            app.register_task(task)
    return app


def test_a_step_that_succeeds_is_run_in_place_and_acknowledged(app):
    message = Message(MAINTENANCE_TASK)

    run_message(app, [["g"], {"event": {"type": "tick"}}, {}], message)

    assert app.ran == [("g", {"type": "tick"})] and message.settled == ["ack"]


def test_a_failed_step_is_rejected_so_the_queue_returns_it_then_dead_letters_it(app):
    message = Message(MAINTENANCE_TASK)

    run_message(app, [["g"], {"event": {"fail": True}}, {}], message)

    assert message.settled == ["reject(requeue=False)"]


def test_a_step_past_its_hard_time_limit_is_stopped_and_rejected(app):
    message = Message(MAINTENANCE_TASK)
    started = time.monotonic()

    run_message(app, [["g"], {"event": {"sleep": 5}}, {}], message)

    assert time.monotonic() - started < 3  # stopped at its 0.5 s limit, not after the 5 s it asked for
    assert message.settled == ["reject(requeue=False)"]


def test_a_task_that_acknowledges_its_failures_is_acknowledged_when_it_fails(app):
    message = Message(BUILD_REQUEST_TASK)

    run_message(app, [[True], {}, {}], message)

    assert message.settled == ["ack"]


def test_what_a_step_leaves_until_its_messages_are_settled_runs_after_they_are_acknowledged(app):
    message = Message(MAINTENANCE_TASK)
    app.trail = lambda: app.ran.append(("trailing", list(message.settled)))

    run_message(app, [["g"], {"event": {"trail": True}}, {}], message)

    assert app.ran == [("g", {"trail": True}), ("trailing", ["ack"])]


def test_what_a_failed_step_left_to_tell_still_runs_once_its_messages_are_rejected(app):
    message = Message(MAINTENANCE_TASK)  # its decision was written: a redelivery would tell nothing
    app.trail = lambda: app.ran.append(("trailing", list(message.settled)))

    run_message(app, [["g"], {"event": {"trail": True, "fail": True}}, {}], message)

    assert app.ran[-1] == ("trailing", ["reject(requeue=False)"])


def test_a_steps_run_is_recorded_for_the_dashboard_only_once_its_messages_are_settled(app):
    message = Message(MAINTENANCE_TASK)

    class Recorded(SkynetTask):  # Skynet's task base, whose runs the dashboard lists
        name, time_limit, acks_on_failure_or_timeout = MAINTENANCE_TASK, 0.5, False

        def run(self, group: str, event: dict[str, Any]) -> None:
            app.ran.append((group, event))  # type: ignore[attr-defined]

        def _record_run(self, started_at: float, runtime: float, error: BaseException | None,
                        task_id: str | None) -> None:
            app.ran.append(("recorded", list(message.settled)))  # type: ignore[attr-defined]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app.register_task(Recorded)

    run_message(app, [["g"], {"event": {"n": 1}}, {}], message)

    assert app.ran == [("g", {"n": 1}), ("recorded", ["ack"])]


@pytest.mark.parametrize("trail", ["fails", "hangs"])
def test_trailing_work_that_fails_or_hangs_leaves_the_step_acknowledged_and_the_thread_free(app, trail):
    message = Message(MAINTENANCE_TASK)

    def work() -> None:
        if trail == "fails":
            raise RuntimeError("SQS refused the notification")
        for _ in range(600):  # many short sends, stopped at the task's hard limit (0.5 s)
            time.sleep(0.05)

    app.trail = work
    started = time.monotonic()

    run_message(app, [["g"], {"event": {"trail": True}}, {}], message)
    run_message(app, [["g"], {"event": {"n": 2}}, {}], next_message := Message(MAINTENANCE_TASK))

    assert time.monotonic() - started < 5
    assert message.settled == ["ack"] and next_message.settled == ["ack"] and app.ran[-1] == ("g", {"n": 2})


@pytest.mark.parametrize("task", ["skynet.update", "os.system", None])
def test_a_message_for_a_task_the_conductor_does_not_run_is_dropped_unrun(app, task):
    message = Message(task)  # type: ignore[arg-type]

    run_message(app, [["rm -rf /"], {}, {}], message)

    assert app.ran == [] and message.settled == ["ack"]


@pytest.mark.parametrize("body", [None, "text", [1, 2], [["g"], "not kwargs", {}]])
def test_a_malformed_body_is_a_failed_step_and_runs_nothing(app, body):
    message = Message(MAINTENANCE_TASK)

    run_message(app, body, message)

    assert app.ran == [] and message.settled == ["reject(requeue=False)"]


def ticket(group: str, instance: str) -> list[Any]:
    """The body of a member's ticket request, as ``Messenger.maintenance`` sends it."""
    return [[], {"group": group, "event": {"type": "ticket_taken", "rollout_id": "r1", "instance": instance}}, {}]


def report(group: str, ticket_number: int) -> list[Any]:
    """The body of an instance's report of its update."""
    return [[], {"group": group, "event": {"type": "update_reported", "rollout_id": "r1", "ticket": ticket_number,
                                           "instance": "i1", "ok": True}}, {}]


def receive(*bodies: tuple[str, list[Any]], task: str = MAINTENANCE_TASK, age: float = 0.0):
    """One receive of named messages: (body, message, when received) and the log of how each was settled."""
    log: list[tuple[str, str]] = []
    at = time.monotonic() - age
    return [(body, Message(task, log=log, name=name), at) for name, body in bodies], log


def test_a_groups_ticket_requests_of_one_receive_are_one_step_run_after_every_other_message(app):
    received, settled = receive(("t1", ticket("g", "i1")), ("r1", report("g", 1)), ("t2", ticket("g", "i2")),
                                ("h1", ticket("h", "i9")), ("r2", report("g", 2)), ("t3", ticket("g", "i3")))

    run_received(app, received)

    assert app.ran == [("g", report("g", 1)[1]["event"]), ("g", report("g", 2)[1]["event"]),  # reports first, in order
                       ("g", ticket("g", "i1")[1]["event"], [ticket("g", n)[1]["event"] for n in ("i2", "i3")]),
                       ("h", ticket("h", "i9")[1]["event"])]  # a group's one ticket request: a step as before
    assert [name for name, _ in settled] == ["r1", "r2", "t1", "t2", "t3", "h1"]
    assert {how for _, how in settled} == {"ack"}


def test_a_failed_batch_step_rejects_every_message_of_the_batch_and_no_other(app):
    received, settled = receive(("t1", ticket("g", "i1")), ("t2", ticket("g", "i2")), ("r1", report("g", 1)))

    def fails_when_batched(group: str, event: dict[str, Any], then: list[Any] | None = None) -> None:
        if then:
            raise RuntimeError("the batch's step failed")

    app.tasks[MAINTENANCE_TASK].run = fails_when_batched

    run_received(app, received)

    assert settled == [("r1", "ack"), ("t1", "reject"), ("t2", "reject")]


@pytest.mark.parametrize("bad", [{"type": "ticket_taken", "rollout_id": "r1", "instance": "no spaces allowed"},
                                 {"type": "ticket_taken", "rollout_id": "r1"}])
def test_a_malformed_ticket_request_is_run_alone_and_rejected_while_the_others_are_one_step(app, bad):
    received, settled = receive(("t1", ticket("g", "i1")), ("bad", [[], {"group": "g", "event": bad}, {}]),
                                ("t2", ticket("g", "i2")))

    def refuses_the_malformed(group: str, event: dict[str, Any], then: list[Any] | None = None) -> None:
        if event == bad:
            raise ValueError("malformed")  # as events.from_message does
        app.ran.append((event, then))

    app.tasks[MAINTENANCE_TASK].run = refuses_the_malformed

    run_received(app, received)

    assert app.ran == [(ticket("g", "i1")[1]["event"], [ticket("g", "i2")[1]["event"]])]
    assert settled == [("bad", "reject"), ("t1", "ack"), ("t2", "ack")]


def test_messages_received_too_long_ago_to_end_within_their_visibility_timeout_are_returned_unrun(app):
    # The step's hard limit is 0.5 s: a message received 19.8 s ago would still run past its 20 s visibility timeout.
    late, late_log = receive(("r1", report("g", 1)), ("t1", ticket("g", "i1")), ("t2", ticket("g", "i2")), age=19.8)
    fresh, fresh_log = receive(("r2", report("g", 2)), age=19.0)

    run_received(app, late, visibility=20)
    run_received(app, fresh, visibility=20)

    assert late_log == [("r1", "reject"), ("t1", "reject"), ("t2", "reject")]
    assert app.ran == [("g", report("g", 2)[1]["event"])] and fresh_log == [("r2", "ack")]


def test_a_late_message_for_a_task_the_conductor_does_not_run_is_still_dropped_not_returned(app):
    received, settled = receive(("u1", [[], {}, {}]), task="skynet.update", age=19.8)
    app.tasks["skynet.update"] = app.tasks[MAINTENANCE_TASK]  # a task of that name known to the app, as in a worker

    run_received(app, received, visibility=20)

    assert settled == [("u1", "ack")] and app.ran == []


def test_the_hard_limit_leaves_no_alarm_behind():
    with hard_limit(0.2):
        pass
    time.sleep(0.4)  # an alarm left armed would raise StepTimeout here

    with pytest.raises(StepTimeout), hard_limit(0.1):
        for _ in range(40):
            time.sleep(0.05)


def test_a_step_on_a_thread_other_than_the_main_one_is_stopped_at_its_hard_limit_too(app):
    message = Message(MAINTENANCE_TASK)
    started = time.monotonic()

    thread = threading.Thread(target=run_message, args=(app, [["g"], {"event": {"sleep": 5}}, {}], message))
    thread.start()
    thread.join(10)

    assert time.monotonic() - started < 3 and message.settled == ["reject(requeue=False)"]


def test_a_step_stuck_in_one_call_past_its_limit_and_grace_is_handed_over_as_stuck():
    stuck: list[tuple[float, float]] = []
    started = time.monotonic()

    with pytest.raises(StepTimeout), hard_limit(0.2, on_stuck=lambda s: stuck.append((s, time.monotonic())),
                                                grace=0.3):
        time.sleep(2)  # one blocking call: the limit can stop it only once it returns

    ended = time.monotonic()
    assert [seconds for seconds, _ in stuck] == [0.5]  # limit + grace
    assert stuck[0][1] < ended - 1  # handed over while the call still blocked
    assert ended - started < 5


def test_a_step_that_ends_in_time_is_never_taken_for_stuck():
    stuck: list[float] = []

    with hard_limit(0.2, on_stuck=stuck.append, grace=0.1):
        pass
    time.sleep(0.6)

    assert stuck == []


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
    assert app.threads == ["conductor", "conductor"] and warmed == ["conductor"]
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


def test_a_receives_steps_all_run_before_what_they_left_until_settled(app):
    log: list[tuple[str, str]] = []
    app.trail = lambda: log.append(("trailing", "ran"))
    received = [([[], {"group": "g", "event": event}, {}], Message(MAINTENANCE_TASK, log=log, name=name),
                 time.monotonic()) for name, event in (("first", {"trail": True}), ("report", {"n": 2}))]

    run_received(app, received)

    assert log == [("first", "ack"), ("report", "ack"), ("trailing", "ran")]
