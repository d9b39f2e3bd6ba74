"""What every task module builds on: the task base class with its Context, the warm-up, sending events.

Hard time limits stay below each queue's visibility timeout (``skynet_tasks.queues``)
so a running task is never handed to a second worker while it still runs.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from skynet_tasks import names, trailing
from skynet_tasks.app import app, settings_of
from skynet_tasks.conductor import Event, TicketTaken
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.taskruns import TaskRuns

log = logging.getLogger(__name__)

# One Context build at a time in a process: a pool child's warm-up thread and its first task would
# otherwise both build AWS clients at once, doubling the CPU before the update can acknowledge.
# A child gets a lock of its own, since a fork may happen while another thread holds this one.
_building = threading.Lock()


def _new_lock_after_fork() -> None:
    global _building
    _building = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


class SkynetTask(Task):
    """A task with the worker's Context, built once per process on first use."""

    abstract = True
    _context: Context | None = None
    # The process the context belongs to: a pool process forked from a parent that holds one
    # (the heartbeat's, see ``adopt``) must not share its AWS connections, so it builds its own.
    _context_pid = 0
    _runs: TaskRuns | None = None

    @classmethod
    def context(cls) -> Context:
        """This process's Context for its tasks: the adopted one, or one built from the worker's settings."""
        ctx = SkynetTask._context
        if ctx is not None and SkynetTask._context_pid == os.getpid():
            return ctx
        with _building:
            ctx = SkynetTask._context
            if ctx is None or SkynetTask._context_pid != os.getpid():
                # The settings the worker built at start and configured the app with.
                ctx = Context.create(settings_of(app), app)
                SkynetTask.adopt(ctx)
            return ctx

    @classmethod
    def adopt(cls, ctx: Context) -> None:
        """Make ``ctx`` the Context of the tasks this process runs (not of processes it forks later)."""
        SkynetTask._context, SkynetTask._context_pid, SkynetTask._runs = ctx, os.getpid(), None

    @property
    def ctx(self) -> Context:
        """The Context this task runs with."""
        return self.context()

    # Routine successes not worth a row on the dashboard's task page (heartbeats: their
    # age is on the instances page); their failures are still recorded.
    quiet_success = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task and record the run (state, runtime, error) for the dashboard."""
        started_at, clock = time.time(), time.monotonic()
        error: BaseException | None = None
        try:
            return super().__call__(*args, **kwargs)
        except BaseException as failure:
            error = failure
            raise
        finally:
            if error is not None or not self.quiet_success:
                # A conductor step's record waits until its messages are settled (``trailing``): the write is
                # no part of the step, and the group's next event waited for it.
                trailing.after_settled(functools.partial(self._record_run, started_at, time.monotonic() - clock,
                                                         error, self.request.id))

    def _record_run(self, started_at: float, runtime: float, error: BaseException | None, task_id: str | None) -> None:
        if SkynetTask._context is None or SkynetTask._context_pid != os.getpid():
            return  # the context itself failed to build: nothing to record with
        settings = self.ctx.settings
        if SkynetTask._runs is None:  # one per process: it counts the records between two trims
            SkynetTask._runs = TaskRuns(self.ctx.aws.dynamodb, names.state_table(settings.env))
        SkynetTask._runs.record(settings.instance_id, self.name, "failure" if error else "success", started_at,
                                round(runtime, 3), f"{type(error).__name__}: {error}" if error else None,
                                task_id=task_id)


def warm_up() -> None:
    """Build what a pool process's tasks use before the first of them needs it.

    Its AWS clients and its broker channel (a boto3 client, and kombu's listing of the
    queues) cost about 80 ms the first time they are used: a conductor's first dispatch,
    or an instance's first report, took that much longer than the next ones.
    """
    try:
        SkynetTask.context()  # built and kept for the process's tasks
        with app.producer_or_acquire() as producer:
            producer.connection.default_channel  # noqa: B018 - connects, lists the queues; back to the pool
    except Exception:  # noqa: BLE001 - the first task builds whatever is still missing
        log.warning("could not warm up this pool process; its first task will", exc_info=True)


@worker_process_init.connect
def _warm_up_in_background(**_: Any) -> None:
    # In a thread: a pool process must tell its parent it is up within seconds, whatever AWS answers.
    threading.Thread(target=warm_up, name="skynet-warm-up", daemon=True).start()


def send_event(ctx: Context, group: str, event: Event) -> None:
    """Post ``event`` to ``group``'s conductor (a ticket request in the tickets lane)."""
    body, dedup = to_message(event)
    ctx.messenger.maintenance(group, body, dedup, lane="tickets" if isinstance(event, TicketTaken) else None)
