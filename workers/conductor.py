"""The conductor inside the worker's main process: the group's maintenance queue, one message at a time.

Conductor steps (and build requests, which only hand the build to this instance's own
queue) take milliseconds. They used to run in a second Celery worker process, with a pool
child of its own, so that a step never waited behind a build or an update: two of the
instance's four processes, about 125 MB, for work that is idle nearly all the time.

Here the main process of the work worker consumes the maintenance queue itself, with a
consumer of its own on a channel of its own (prefetch 1, so a FIFO message group is
handled one message at a time, in order), and runs each step on its event loop, where
the heartbeat already runs. Builds and updates run in the pool's child, so a step never
waits behind them; the loop is busy only for the step itself.

A step keeps a hard time limit, as its task declares (``time_limit``): past it the step is
interrupted (SIGALRM in the main thread, as Celery's soft limit does in a pool child) and
its message is handled like any failure.

What is trusted: the message comes from the group's maintenance queue, which only Skynet's
own roles may send to (IAM); its task name is still checked against the tasks the conductor
runs, and its arguments are validated by the task itself.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, bootsteps
from kombu import Consumer, Queue

from skynet_tasks import logformat
from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK, PUBLISH_TASK

log = logging.getLogger(__name__)

# The tasks a maintenance queue carries (``messages.Messenger``); anything else is refused.
CONDUCTOR_TASKS = frozenset({MAINTENANCE_TASK, BUILD_REQUEST_TASK, PUBLISH_TASK})


class StepTimeout(Exception):
    """A conductor step ran past its task's hard time limit."""


@contextmanager
def hard_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block with StepTimeout after ``seconds`` (main thread only; no limit for None)."""
    if not seconds:
        yield
        return

    def expire(*_: object) -> None:
        raise StepTimeout(f"conductor step ran past its hard time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_message(app: Celery, body: Any, message: Any) -> None:
    """Run the task a maintenance message carries, here, then settle the message as Celery would."""
    name = (message.headers or {}).get("task")
    if name not in CONDUCTOR_TASKS:
        # Not a conductor's message: nothing here may run it, and returning it would only loop.
        log.error("maintenance queue message for task %r refused and dropped: not a conductor task", name)
        message.ack()
        return
    task = app.tasks[name]
    try:
        args, kwargs, _embed = body  # Celery's task message protocol 2: (args, kwargs, embed)
    except (TypeError, ValueError):
        args, kwargs = None, {}
    # A task called in place sends no task_prerun signal: its log fields are bound here.
    fields = {**logformat.fields_of_task(name, kwargs if isinstance(kwargs, dict) else {}), "role": "conductor"}
    with logformat.task_fields(fields):
        try:
            if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
                raise ValueError(f"not a task message body of protocol 2: {type(body).__name__}")
            with hard_limit(task.time_limit):
                task(*args, **kwargs)
        except Exception:  # noqa: BLE001 - any failure: the message is settled by the task's rule below
            log.exception("conductor step %s failed", name)
            if task.acks_on_failure_or_timeout:
                message.ack()
            else:
                message.reject(requeue=False)  # the queue's redrive policy returns it, then dead-letters it
            return
    message.ack()


def conductor_step(app: Celery, queue: str) -> type[bootsteps.ConsumerStep]:
    """A consumer bootstep that runs the conductor's tasks of ``queue`` in the worker's main process."""

    class Conductor(bootsteps.ConsumerStep):
        """Consumes the group's maintenance queue on its own channel and runs each step in place."""

        def get_consumers(self, channel: Any) -> list[Consumer]:
            return [Consumer(channel, queues=[Queue(queue)], callbacks=[self.on_message], prefetch_count=1,
                             accept=["json"], no_ack=False)]

        def on_message(self, body: Any, message: Any) -> None:
            run_message(app, body, message)

    return Conductor
