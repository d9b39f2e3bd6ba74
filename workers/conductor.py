"""The conductor inside the worker's process: the group's maintenance queue, one message at a time.

Conductor steps (and build requests, which only hand the build to this instance's own
queue) take milliseconds. They used to run in a second Celery worker process, with a pool
child of its own, so that a step never waited behind a build or an update: two of the
instance's four processes, about 125 MB, for work that is idle nearly all the time.

Here the work worker's main process consumes the maintenance queue itself, on a thread of its
own with a broker connection of its own, and runs each step on that thread, one at a time (so a
FIFO message group is handled in order, one step at a time). Builds and updates run in the
pool's child, so a step never waits behind them; and since the thread is not the worker's event
loop, a step never waits behind the loop's work (the heartbeat, handing the instance's own
messages to the child) and never holds it up: a member whose update is dispatched while it runs
a step for its group receives the update at once. (The steps ran on the event loop before, and
hand-offs waited behind them: benchmarks/RESULTS.md.)

A step keeps a hard time limit, as its task declares (``time_limit``): past it the step is
interrupted (workers/hard_limit.py) and its message is handled like any failure.

A receive takes up to ten messages (``BATCH_MAX``, SQS's most; a FIFO queue hands out several
messages of one message group in order, and no other consumer gets that group's later messages
while they are in flight), run on this thread one step at a time (``run_received``): every message
but the ticket requests first, each alone and in the order received (a report hands the turn on:
it never waits behind ticket requests); then each group's ticket requests in ONE step, decided one
after another and written in one conditional write (``conductor.fold``). When a rollout starts,
every member asks for a ticket at once: one step per request was one write per request, and the
canary's report, whose step publishes and reads every ticket, kept losing its own write to them.
A batch's messages are settled together: all acknowledged, or all handled as the failure of one.
A message whose step could no longer end within its visibility timeout (the steps before it were
slow) is returned to the queue unrun, as a failed one is, rather than run while another member may
receive it again.

What is trusted: the message comes from the group's maintenance queue, which only Skynet's
own roles may send to (IAM); its task name is still checked against the tasks the conductor
runs, and its arguments are validated by the task itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, bootsteps
from kombu import Connection, Consumer, Queue

from skynet_tasks import logformat
from skynet_tasks.events import BadEvent, from_message
from skynet_tasks.messages import BUILD_REQUEST_TASK, MAINTENANCE_TASK, PUBLISH_TASK
from skynet_tasks.queues import MAINTENANCE_VISIBILITY
from workers.hard_limit import StepTimeout, hard_limit

log = logging.getLogger(__name__)

# The tasks a maintenance queue carries (``messages.Messenger``); anything else is refused.
CONDUCTOR_TASKS = frozenset({MAINTENANCE_TASK, BUILD_REQUEST_TASK, PUBLISH_TASK})
RECONNECT_AFTER = 2.0  # seconds between a lost broker connection and the next one
DRAIN_SECONDS = 60.0  # a receive ends after its long poll anyway; this only bounds kombu's own wait loop
BATCH_MAX = 10  # messages per receive: SQS hands out at most ten

__all__ = ["BATCH_MAX", "CONDUCTOR_TASKS", "Conductor", "StepTimeout", "conductor_step", "run_message",
           "run_received", "ticket_request"]


def run_message(app: Celery, body: Any, message: Any) -> None:
    """Run the task a maintenance message carries, here, then settle the message as Celery would."""
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
    _step(app, name, args, kwargs, [message])


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
    too late to end within its ``visibility`` timeout is rejected unrun: the queue returns it.
    """
    requests: dict[str, list[tuple[Any, Any, float]]] = {}
    for body, message, received_at in received:
        group = ticket_request(body, message)
        if group is not None:
            requests.setdefault(group, []).append((body, message, received_at))
        elif _in_time(app, (message.headers or {}).get("task"), [(message, received_at)], visibility):
            run_message(app, body, message)
    for group, run in requests.items():
        if not _in_time(app, MAINTENANCE_TASK, [(message, at) for _, message, at in run], visibility):
            continue
        if len(run) == 1:
            run_message(app, run[0][0], run[0][1])
            continue
        events = [body[1]["event"] for body, _, _ in run]
        _step(app, MAINTENANCE_TASK, (), {"group": group, "event": events[0], "then": events[1:]},
              [message for _, message, _ in run])


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


def _step(app: Celery, name: str, args: Any, kwargs: Any, messages: Sequence[Any]) -> None:
    """Run task ``name`` with ``args`` and ``kwargs`` in place, within its hard limit; settle ``messages`` alike."""
    task = app.tasks[name]
    # A task called in place sends no task_prerun signal: its log fields are bound here.
    fields = {**logformat.fields_of_task(name, kwargs if isinstance(kwargs, dict) else {}), "role": "conductor"}
    with logformat.task_fields(fields):
        try:
            if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
                raise ValueError(f"not a task message body of protocol 2: {type(args).__name__}")
            started, cpu = time.monotonic(), time.thread_time()
            with hard_limit(task.time_limit):
                task(*args, **kwargs)
            # Where a hand-off's time goes: a step's wall time far above its CPU time is time waiting on AWS.
            log.debug("conductor step %s of %d message(s) took %.1f ms, %.1f ms of it on the CPU", name,
                      len(messages), (time.monotonic() - started) * 1000, (time.thread_time() - cpu) * 1000)
        except (Exception, StepTimeout):  # noqa: BLE001 - any failure: the messages are settled by the task's rule
            log.exception("conductor step %s of %d message(s) failed", name, len(messages))
            for message in messages:
                if task.acks_on_failure_or_timeout:
                    message.ack()
                else:
                    message.reject(requeue=False)  # the queue's redrive policy returns it, then dead-letters it
            return
    for message in messages:
        message.ack()


class Conductor:
    """Consumes a group's maintenance queue on a thread and a broker connection of its own, one step at a time.

    ``connect`` makes the thread's connection (the app's broker, with its transport options: the
    same long poll as the worker's own queue). ``warm_up`` runs on the thread before the first
    receive: what the first step would otherwise build on the hand-off's path (AWS clients, the
    producer's channel). A lost connection is made again after ``RECONNECT_AFTER`` seconds.
    """

    def __init__(self, app: Celery, queue: str, connect: Callable[[], Connection] | None = None,
                 warm_up: Callable[[], None] | None = None, visibility: float = MAINTENANCE_VISIBILITY) -> None:
        self.app, self.queue, self.visibility = app, queue, visibility
        self.received: list[tuple[Any, Any, float]] = []  # the messages of the receive in hand, not yet run
        self.connect = connect or app.connection_for_read
        self.warm_up = warm_up
        self.stopping = threading.Event()
        self.idle = threading.Event()  # set while no step runs
        self.idle.set()
        self.thread: threading.Thread | None = None  # None once it ended, under ``lock``
        self.lock = threading.Lock()

    def start(self) -> None:
        """Start consuming on a new thread; a thread still running (a consumer restart) just carries on."""
        with self.lock:
            self.stopping.clear()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="conductor", daemon=True)
                self.thread.start()

    def revive(self) -> bool:
        """Start the thread again if it ended while not stopped (True then): the heartbeat asks every beat.

        The thread outlives every failure it expects; this is for the one it does not, so that a
        member (and a group of one) never stops conducting while its worker still runs.
        """
        with self.lock:
            if self.stopping.is_set() or self.thread is None or self.thread.is_alive():
                return False
            log.error("conductor: its thread had ended; starting it again")
            self.thread = threading.Thread(target=self._run, name="conductor", daemon=True)
            self.thread.start()
            return True

    def stop(self, timeout: float) -> None:
        """Stop receiving; wait up to ``timeout`` seconds for a step in hand to finish (never for a receive)."""
        self.stopping.set()
        if not self.idle.wait(timeout):
            log.warning("conductor: a step still runs after %g s of the worker's shutdown; its message returns"
                        " after its visibility timeout", timeout)

    def on_message(self, body: Any, message: Any) -> None:
        """Take a message of the receive in hand; ``run_received`` runs them once the receive has delivered them all."""
        self.idle.clear()
        self.received.append((body, message, time.monotonic()))

    def run_received(self) -> None:
        """Run the messages of the receive in hand (also when stopping: they were received, so they are handled)."""
        received, self.received = self.received, []
        try:
            run_received(self.app, received, self.visibility)
        finally:
            self.idle.set()

    def _run(self) -> None:
        if self.warm_up is not None:
            try:
                self.warm_up()
            except Exception:  # noqa: BLE001 - the first step builds whatever is still missing
                log.warning("conductor: warm-up failed; the first step builds what it needs", exc_info=True)
        while True:
            with self.lock:  # a start() meanwhile clears ``stopping``, or finds no thread and starts one
                if self.stopping.is_set():
                    self.thread = None
                    return
            try:
                with self.connect() as connection:
                    self._consume(connection)
            except (Exception, StepTimeout):  # noqa: BLE001 - the thread must outlive a broker outage, as the worker does
                log.exception("conductor: lost the connection to the maintenance queue %s; reconnecting",
                              self.queue)
                self.stopping.wait(RECONNECT_AFTER)

    def _consume(self, connection: Connection) -> None:
        channel = connection.channel()
        # kombu's SQS channel takes the process's event loop, if there is one (the worker's), and would
        # receive on it, from the loop's thread: this one receives on its own, with blocking long polls.
        channel.hub = None
        consumer = Consumer(channel, queues=[Queue(self.queue)], callbacks=[self.on_message],
                            prefetch_count=BATCH_MAX, accept=["json"], no_ack=False)
        with consumer:
            try:
                while not self.stopping.is_set():
                    try:
                        # One long poll (the transport's ``wait_time_seconds``): kombu hands each message it
                        # received to ``on_message``, all of them before it returns.
                        connection.drain_events(timeout=DRAIN_SECONDS)
                    except TimeoutError:
                        continue
                    self.run_received()
            finally:
                self.received = []  # left only by a receive that failed: not run, its messages return
                self.idle.set()


def conductor_step(conductor: Conductor, stop_timeout: float = 20.0) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that runs ``conductor`` on its thread of the worker's main process."""

    class ConductorStep(bootsteps.StartStopStep):
        """Starts the conductor's thread with the worker's consumer; stops it, a step in hand done, with it."""

        def start(self, consumer: Any) -> None:
            """Start the conductor's thread (or keep the one running)."""
            conductor.start()

        def stop(self, consumer: Any) -> None:
            """Stop the conductor's receiving, waiting a while for a step in hand."""
            conductor.stop(stop_timeout)

    return ConductorStep
