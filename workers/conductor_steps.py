"""How the conductor runs the messages of one receive, each step in place, and settles them.

A receive takes up to ten messages (SQS's most; a FIFO queue hands out several messages of one message
group in order, and no other consumer gets that group's later messages while they are in flight), run
on the conductor's thread one step at a time (``run_received``): every message
but the ticket requests first, each alone and in the order received (a report hands the turn on:
it never waits behind ticket requests); then each group's ticket requests in ONE step, decided one
after another and written in one conditional write (``conductor.fold``). When a rollout starts,
every member asks for a ticket at once: one step per request was one write per request, and the
canary's report, whose step publishes and reads every ticket, kept losing its own write to them.
A batch's messages are settled together: all acknowledged (one DeleteMessageBatch:
``compat.kombu_sqs_batch_ack``), or all handled as the failure of one.
A message whose step could no longer end within its visibility timeout (the steps before it were
slow) is returned to the queue unrun, as a failed one is, rather than run while another member may
receive it again.

A step's messages are settled as soon as its decision is written and its turn dispatched: what the
step still has to tell (members to take a ticket or to prepare, notices for people) it leaves until
then (``skynet_tasks.trailing``), and it runs once every step of the receive has run, so that the
FIFO group's next event (a report) is handed out, to this member or another, while it is told.

What is trusted: the message comes from the group's maintenance queue, which only Skynet's
own roles may send to (IAM); its task name is still checked against the tasks the conductor
runs, and its arguments are validated by the task itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery

from skynet_tasks import logformat, trailing
from skynet_tasks.compat.kombu_sqs_batch_ack import ack_together
from skynet_tasks.events import BadEvent, from_message
from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK, PUBLISH_TASK
from skynet_tasks.queues import MAINTENANCE_VISIBILITY
from workers.hard_limit import StepTimeout, hard_limit

log = logging.getLogger(__name__)

# The tasks a maintenance queue carries (``messages.Messenger``); anything else is refused.
CONDUCTOR_TASKS = frozenset({MAINTENANCE_TASK, BUILD_REQUEST_TASK, PUBLISH_TASK})

__all__ = ["CONDUCTOR_TASKS", "StepTimeout", "run_message", "run_received", "ticket_request"]

# What each step of a receive left until its messages were settled: (its task's name, its log fields, the work).
Trailing = list[tuple[str, dict[str, Any], list[trailing.Work]]]


def run_message(app: Celery, body: Any, message: Any, later: Trailing | None = None) -> None:
    """Run the task a maintenance message carries, here, then settle the message as Celery would.

    What the step left until then runs after, or is added to ``later`` (the receive's other steps first).
    """
    name = (message.headers or {}).get("task")
    if name not in CONDUCTOR_TASKS:
        # Not a conductor's message: nothing here may run it, and returning it would only loop.
        log.error("maintenance queue message for task %r refused and dropped: not a conductor task", name)
        message.ack()
        return
    try:
        args, kwargs, _embed = body  # Celery's task message protocol 2: (args, kwargs, embed)
    except (TypeError, ValueError):
        args, kwargs = None, {}
    _step(app, name, args, kwargs, [message], later)


def ticket_request(body: Any, message: Any) -> str | None:
    """The group of a well-formed ticket request, which a step may decide with the others of its group; else None.

    Anything else (another event, another task, a malformed body or event) is run alone, as always.
    """
    if (message.headers or {}).get("task") != MAINTENANCE_TASK:
        return None
    try:
        args, kwargs, _embed = body
    except (TypeError, ValueError):
        return None
    if args or not isinstance(kwargs, dict) or set(kwargs) != {"group", "event"} \
            or not isinstance(kwargs["group"], str) or not isinstance(kwargs["event"], dict) \
            or kwargs["event"].get("type") != "ticket_taken":
        return None
    try:
        from_message(kwargs["event"])  # (decided again by the step: this only keeps a malformed one out of a batch)
    except BadEvent:
        return None
    return kwargs["group"]


def run_received(app: Celery, received: Sequence[tuple[Any, Any, float]],
                 visibility: float = MAINTENANCE_VISIBILITY) -> None:
    """Run the messages of one receive (body, message, when received: ``time.monotonic``), then settle them.

    Every message but the ticket requests first, each alone, in the order received; then each
    group's ticket requests in one step (in the order received). A message whose step would start
    too late to end within its ``visibility`` timeout is rejected unrun: the queue returns it. What the
    steps left until their messages were settled runs once every step of the receive has run.
    """
    later: Trailing = []
    requests: dict[str, list[tuple[Any, Any, float]]] = {}
    for body, message, received_at in received:
        group = ticket_request(body, message)
        if group is not None:
            requests.setdefault(group, []).append((body, message, received_at))
        elif _in_time(app, (message.headers or {}).get("task"), [(message, received_at)], visibility):
            run_message(app, body, message, later)
    for group, run in requests.items():
        if not _in_time(app, MAINTENANCE_TASK, [(message, at) for _, message, at in run], visibility):
            continue
        if len(run) == 1:
            run_message(app, run[0][0], run[0][1], later)
            continue
        events = [body[1]["event"] for body, _, _ in run]
        _step(app, MAINTENANCE_TASK, (), {"group": group, "event": events[0], "then": events[1:]},
              [message for _, message, _ in run], later)
    _run_trailing(app, later)


def _in_time(app: Celery, name: Any, messages: list[tuple[Any, float]], visibility: float) -> bool:
    """Whether a step of task ``name`` on ``messages`` would end within their visibility timeout; if not, they are
    rejected unrun (the queue returns them once it passes, another receive of theirs counted)."""
    # (a task the conductor does not run is dropped unrun by ``run_message``, whenever it was received)
    limit = float(app.tasks[name].time_limit or 0) if name in CONDUCTOR_TASKS else 0.0
    late = [message for message, received_at in messages if time.monotonic() - received_at + limit > visibility]
    if not late:
        return True
    log.warning("conductor: %d message(s) of task %s received too long ago to run within their visibility"
                " timeout; returned to the queue unrun", len(messages), name)
    for message, _ in messages:
        message.reject(requeue=False)
    return False


def _step(app: Celery, name: str, args: Any, kwargs: Any, messages: Sequence[Any],
          later: Trailing | None = None) -> None:
    """Run task ``name`` with ``args`` and ``kwargs`` in place, within its hard limit; settle ``messages`` alike.

    What the step left until its messages are settled (``trailing.after_settled``) runs once they are
    (or is added to ``later``): the FIFO group's next event is handed out meanwhile.
    """
    task = app.tasks[name]
    # A task called in place sends no task_prerun signal: its log fields are bound here.
    fields = {**logformat.fields_of_task(name, kwargs if isinstance(kwargs, dict) else {}), "role": "conductor"}
    with logformat.task_fields(fields):
        with trailing.deferring() as work:
            succeeded = _run_in_place(task, args, kwargs, len(messages))
        if succeeded or task.acks_on_failure_or_timeout:
            ack_together(messages)  # a run of ticket requests: one request, not one per message
        else:
            for message in messages:
                message.reject(requeue=False)  # the queue's redrive policy returns it, then dead-letters it
    if later is None:
        _run_trailing(app, [(name, fields, work)])
    elif work:
        later.append((name, fields, work))


def _run_trailing(app: Celery, later: Trailing) -> None:
    """Run what steps left until their messages were settled, each step's within its task's hard limit."""
    for name, fields, work in later:
        with logformat.task_fields(fields):
            try:
                with hard_limit(app.tasks[name].time_limit):
                    trailing.run(work)
            except StepTimeout:
                log.warning("conductor step %s: what it left until its messages were settled was stopped at its"
                            " hard limit", name)


def _run_in_place(task: Any, args: Any, kwargs: Any, count: int) -> bool:
    """Run ``task`` within its hard limit; whether it succeeded (a failure is logged)."""
    try:
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise ValueError(f"not a task message body of protocol 2: {type(args).__name__}")
        started, cpu = time.monotonic(), time.thread_time()
        with hard_limit(task.time_limit):
            task(*args, **kwargs)
        # Where a hand-off's time goes: a step's wall time far above its CPU time is time waiting on AWS.
        log.debug("conductor step %s of %d message(s) took %.1f ms, %.1f ms of it on the CPU", task.name, count,
                  (time.monotonic() - started) * 1000, (time.thread_time() - cpu) * 1000)
        return True
    except (Exception, StepTimeout):  # noqa: BLE001 - any failure: the messages are settled by the task's rule
        log.exception("conductor step %s of %d message(s) failed", task.name, count)
        return False
