"""A task the worker runs in its main process (``workers.main_process_tasks``): executed where its message is
handled, acknowledged, never reserved for the pool (whose autoscaler would start the child); with a countdown,
held on the worker's timer with the prefetch window widened. Real Celery task messages, on kombu's memory
transport; the consumer around the strategy stands in for Celery's (its timer, QoS and state)."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.worker import state
from kombu import Connection, Consumer, Queue

from workers.main_process_tasks import STRATEGY, run_here, run_here_too

pytestmark = pytest.mark.timeout(30)

ran: list[tuple[int, dict[str, Any]]] = []


APP = Celery("main-process-test", broker="memory://", set_as_current=False)
APP.conf.task_acks_late = True


@APP.task(name="test.light", bind=True)
def light(self: Any, **kwargs: Any) -> None:
    ran.append((os.getpid(), kwargs))


class FakeConsumer:
    """What a strategy reads of Celery's consumer, recording the timer and prefetch calls."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Any]] = []
        self.widened = 0
        self.hostname, self.event_dispatcher, self.connection_errors = "test@host", None, ()
        self.pooled: list[Any] = []  # what was handed to the pool: nothing, ever
        self.pool = SimpleNamespace(apply_async=lambda *args, **kwargs: self.pooled.append(args))
        self.controller = SimpleNamespace(state=SimpleNamespace(revoked=set()))
        self.qos = SimpleNamespace(increment_eventually=self._widen, decrement_eventually=self._narrow)
        self.timer = SimpleNamespace(call_at=lambda eta, fn, priority=0: self.scheduled.append((eta, fn)))

    def _widen(self) -> None:
        self.widened += 1

    def _narrow(self) -> None:
        self.widened -= 1


def handled(app: Celery, task: Any, **options: Any) -> tuple[FakeConsumer, list[Any], list[str]]:
    """Send ``task`` (with ``options``), receive its message, hand it to the strategy; the consumer, the
    callbacks called and what was done to the message."""
    consumer, called, settled = FakeConsumer(), [], []
    handler = run_here(task, app, consumer)
    with Connection("memory://") as connection:
        queue = Queue(f"light-{time.monotonic_ns()}")
        task.apply_async(kwargs={"n": 1}, queue=queue.name, connection=connection, **options)

        def on_message(message: Any) -> None:
            handler(message, None, lambda *_: (settled.append("ack"), message.ack()),
                    lambda *_a, **_k: settled.append("reject"), [called.append])

        with Consumer(connection, [queue], on_message=on_message, accept=["json"]):
            connection.drain_events(timeout=5)
    return consumer, called, settled


def test_a_message_runs_in_this_process_at_once_acknowledged_and_never_reserved_for_the_pool():
    ran.clear()
    reserved = len(state.reserved_requests)

    consumer, called, settled = handled(APP, light)

    assert ran == [(os.getpid(), {"n": 1})]
    assert settled == ["ack"]
    assert called == [] and len(state.reserved_requests) == reserved  # the autoscaler never hears of it
    assert consumer.scheduled == [] and consumer.widened == 0 and consumer.pooled == []


def test_a_message_with_a_countdown_waits_on_the_timer_with_the_prefetch_widened_then_runs_here():
    ran.clear()
    sent = time.monotonic()  # (the worker's timer counts in the monotonic clock's seconds)

    consumer, _, settled = handled(APP, light, countdown=3)

    assert ran == [] and settled == [] and consumer.widened == 1
    ((eta, later),) = consumer.scheduled
    assert sent + 3 - 1 <= eta <= time.monotonic() + 3 + 1
    later()
    assert ran == [(os.getpid(), {"n": 1})] and settled == ["ack"] and consumer.widened == 0
    assert consumer.pooled == []


def test_the_worker_sets_the_strategy_by_task_name():
    app = Celery("main-process-strategy", set_as_current=False)

    @app.task(name="test.other")
    def other() -> None:
        """Nothing: only its strategy is looked at."""

    run_here_too(app, ["test.other"])
    assert app.tasks["test.other"].Strategy == STRATEGY
