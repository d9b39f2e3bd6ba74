"""The conductor in the worker's main process (workers/conductor.py): each message run in place and settled.

A Celery app with no broker stands for the worker's; the messages are kombu-like objects that record
how they were settled, because what the queue then does with them (redelivery after the visibility
timeout, the dead-letter queue after 5 receives) is kombu's and SQS's, tested in test_deadletters.py.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery

from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK
from workers.conductor import StepTimeout, hard_limit, run_message


@dataclass
class Message:
    """A received message: its task header, and how the conductor settled it."""

    task: str
    settled: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, Any]:
        return {"task": self.task}

    def ack(self) -> None:
        self.settled.append("ack")

    def reject(self, requeue: bool) -> None:
        self.settled.append(f"reject(requeue={requeue})")


@pytest.fixture
def app() -> Celery:
    app = Celery("conductor-test", set_as_current=False)
    app.ran = []  # type: ignore[attr-defined]

    class Maintenance(app.Task):  # type: ignore[name-defined]
        name, time_limit, acks_on_failure_or_timeout = MAINTENANCE_TASK, 0.5, False

        def run(self, group: str, event: dict[str, Any]) -> None:
            app.ran.append((group, event))  # type: ignore[attr-defined]
            if event.get("sleep"):
                time.sleep(event["sleep"])
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
        time.sleep(2)
