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

A receive takes up to ten messages (``BATCH_MAX``, SQS's most); ``workers.conductor_steps`` runs and
settles them.

What is trusted: the message comes from the group's maintenance queue, which only Skynet's
own roles may send to (IAM); its task name is still checked against the tasks the conductor
runs, and its arguments are validated by the task itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from celery import Celery, bootsteps
from kombu import Connection, Consumer, Queue

from skynet_tasks.queues import MAINTENANCE_VISIBILITY
from workers.conductor_steps import CONDUCTOR_TASKS, StepTimeout, run_message, run_received, ticket_request

log = logging.getLogger(__name__)

RECONNECT_AFTER = 2.0  # seconds between a lost broker connection and the next one
DRAIN_SECONDS = 60.0  # a receive ends after its long poll anyway; this only bounds kombu's own wait loop
BATCH_MAX = 10  # messages per receive: SQS hands out at most ten
# A fork (the pool child's start) waits this long at most for a conductor's step in hand (a step's own hard
# limit is 15 s): a lock the step's thread holds at the fork would stay held in the child for good.
FORK_WAITS_AT_MOST = 15.0

__all__ = ["BATCH_MAX", "CONDUCTOR_TASKS", "Conductor", "StepTimeout", "conductor_step", "run_message",
           "run_received", "ticket_request"]


class Conductor:
    """Consumes a group's maintenance queue on a thread and a broker connection of its own, one step at a time.

    ``connect`` makes the thread's connection (the app's broker, with its transport options: the
    same long poll as the worker's own queue). ``warm_up`` builds what the first step would otherwise
    build on the hand-off's path (AWS clients, the producer's channel), once, on the thread that starts
    the conductor (the worker's main thread), before the conductor's thread starts: the pool child is
    forked from the main thread, and a lock another thread holds at the fork (a module's import lock, as
    botocore imports what a first client needs) stays held in the child for good. A proxy's child, forked
    for its first task while the conductor's thread warmed up, never ran that task (CI, 2026-12-03).
    A lost connection is made again after ``RECONNECT_AFTER`` seconds.
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
        self.warmed = False
        self.stepping = threading.RLock()  # held while a receive's steps run: a fork of the process waits for it
        _CONDUCTORS.add(self)

    def start(self) -> None:
        """Start consuming on a new thread; a thread still running (a consumer restart) just carries on."""
        with self.lock:
            self.stopping.clear()
            if self.thread is None or not self.thread.is_alive():
                self._warm_up_once()
                self.thread = threading.Thread(target=self._run, name="conductor", daemon=True)
                self.thread.start()

    def _warm_up_once(self) -> None:
        if self.warm_up is None or self.warmed:
            return
        self.warmed = True
        try:
            self.warm_up()
        except Exception:  # noqa: BLE001 - the first step builds whatever is still missing
            log.warning("conductor: warm-up failed; the first step builds what it needs", exc_info=True)

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
            with self.stepping:
                run_received(self.app, received, self.visibility)
        finally:
            self.idle.set()

    def _run(self) -> None:
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


# The pool child is forked from the worker's main thread while the conductor's thread may be in a step: a
# fork copies only the forking thread, and a lock the step held then (in botocore, in kombu) stays held in
# the child. A child forked 9 ms before its conductor's step ended never ran its first task (CI,
# 2026-12-03, test_stack_cluster's deploy). So a fork waits for the steps in hand.
_CONDUCTORS: weakref.WeakSet[Conductor] = weakref.WeakSet()
_HELD_AT_FORK: list[Conductor] = []


def _before_fork() -> None:
    for conductor in list(_CONDUCTORS):
        if conductor.stepping.acquire(timeout=FORK_WAITS_AT_MOST):  # (reentrant: a step that forks goes on)
            _HELD_AT_FORK.append(conductor)


def _after_fork_in_parent() -> None:
    while _HELD_AT_FORK:
        _HELD_AT_FORK.pop().stepping.release()


def _after_fork_in_child() -> None:
    _HELD_AT_FORK.clear()
    for conductor in list(_CONDUCTORS):
        conductor.stepping = threading.RLock()  # the parent's, copied held: the child runs no conductor


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


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
