"""A receive of several messages in the conductor (``workers.conductor.run_received``): every message but the
ticket requests runs first, each alone, then each group's ticket requests as one step; a batch's messages are
settled together, and a failed batch step rejects them all and no other. Messages received too long ago to end
within their visibility timeout go back unrun; what a receive's steps leave until settled runs after all of them.
The app and messages stand for the worker's and kombu's, as in test_conductor_inprocess.py (``inprocesskit``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import Celery
from inprocesskit import Message, conductor_app, report, ticket

from skynet_tasks.messages import MAINTENANCE_TASK
from workers.conductor import run_received


@pytest.fixture
def app() -> Celery:
    return conductor_app()


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


def test_a_receives_steps_all_run_before_what_they_left_until_settled(app):
    log: list[tuple[str, str]] = []
    app.trail = lambda: log.append(("trailing", "ran"))
    received = [([[], {"group": "g", "event": event}, {}], Message(MAINTENANCE_TASK, log=log, name=name),
                 time.monotonic()) for name, event in (("first", {"trail": True}), ("report", {"n": 2}))]

    run_received(app, received)

    assert log == [("first", "ack"), ("report", "ack"), ("trailing", "ran")]
