"""The conductor in the worker's main process (workers/conductor.py): each message run in place and settled.

A Celery app with no broker stands for the worker's; the messages are kombu-like objects that record
how they were settled (``inprocesskit``), because what the queue then does with them (redelivery after the
visibility timeout, the dead-letter queue after 5 receives) is kombu's and SQS's, tested in test_deadletters.py.
What a step leaves until its messages are settled (``trailing``) runs after they are; a step past its hard time
limit (``workers.hard_limit``) is stopped, on any thread, and one stuck in a single call is handed over as stuck.
A receive of several messages is tested in test_conductor_receive_batches.py, the conductor's own thread on a
real queue in test_conductor_thread_on_sqs.py.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import pytest
from celery import Celery
from inprocesskit import Message, conductor_app

from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK
from skynet_tasks.tasks.base import SkynetTask
from workers.conductor import run_message
from workers.hard_limit import StepTimeout, hard_limit


@pytest.fixture
def app() -> Celery:
    return conductor_app()


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
