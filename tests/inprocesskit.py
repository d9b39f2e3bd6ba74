"""The conductor in the worker's main process, for its tests: a Celery app with no broker that stands for the
worker's (its maintenance step records what it ran, on which thread, and can sleep, fail or leave work until its
messages are settled), kombu-like messages that record how the conductor settled them, and the bodies of a
member's ticket request and of an instance's report.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK
from skynet_tasks.trailing import after_settled


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


def conductor_app() -> Celery:
    """A Celery app with no broker, as a test's ``app`` fixture: ``app.ran`` lists the steps its maintenance task
    ran, ``app.threads`` the threads they ran on, and ``app.trail`` is what a step asked to leave until its
    messages are settled (``{"trail": True}``) runs."""
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


def ticket(group: str, instance: str) -> list[Any]:
    """The body of a member's ticket request, as ``Messenger.maintenance`` sends it."""
    return [[], {"group": group, "event": {"type": "ticket_taken", "rollout_id": "r1", "instance": instance}}, {}]


def report(group: str, ticket_number: int) -> list[Any]:
    """The body of an instance's report of its update."""
    return [[], {"group": group, "event": {"type": "update_reported", "rollout_id": "r1", "ticket": ticket_number,
                                           "instance": "i1", "ok": True}}, {}]


