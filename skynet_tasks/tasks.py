"""Skynet's Celery tasks: thin bindings of ``skynet_tasks.handlers`` to queues and time limits.

Hard time limits stay below each queue's visibility timeout (``skynet_tasks.queues``)
so a running task is never handed to a second worker while it still runs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from skynet_tasks import handlers, membership, names
from skynet_tasks.agent import restart_requested
from skynet_tasks.app import app, settings_of
from skynet_tasks.conductor import UPDATE_HARD_LIMIT
from skynet_tasks.context import Context
from skynet_tasks.messages import (
    BUILD_REQUEST_TASK,
    BUILD_TASK,
    DRAIN_TASK,
    MAINTENANCE_TASK,
    RE_REGISTER_TASK,
    REGISTRY_CHANGED_TASK,
    TAKE_TICKET_TASK,
    UPDATE_TASK,
)
from skynet_tasks.taskruns import TaskRuns

log = logging.getLogger(__name__)


class SkynetTask(Task):
    """A task with the worker's Context, built once per process on first use."""

    abstract = True
    _context: Context | None = None
    _runs: TaskRuns | None = None

    @classmethod
    def context(cls) -> Context:
        if SkynetTask._context is None:
            # The settings the worker built at start and configured the app with.
            SkynetTask._context = Context.create(settings_of(app), app)
        return SkynetTask._context

    @property
    def ctx(self) -> Context:
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
                self._record_run(started_at, time.monotonic() - clock, error)

    def _record_run(self, started_at: float, runtime: float, error: BaseException | None) -> None:
        if SkynetTask._context is None:  # the context itself failed to build: nothing to record with
            return
        settings = self.ctx.settings
        if SkynetTask._runs is None:  # one per process: it counts the records between two trims
            SkynetTask._runs = TaskRuns(self.ctx.aws.dynamodb, names.state_table(settings.env))
        SkynetTask._runs.record(settings.instance_id, self.name, "failure" if error else "success", started_at,
                                round(runtime, 3), f"{type(error).__name__}: {error}" if error else None,
                                task_id=self.request.id)


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


@app.task(name=BUILD_TASK, base=SkynetTask, bind=True, soft_time_limit=780, time_limit=840)
def build(self: SkynetTask, request: dict[str, Any]) -> None:
    handlers.handle_build(self.ctx, request)


@app.task(name=BUILD_REQUEST_TASK, base=SkynetTask, bind=True, time_limit=15)
def build_request(self: SkynetTask, request: dict[str, Any]) -> None:
    handlers.handle_build_request(self.ctx, request)


@app.task(name=MAINTENANCE_TASK, base=SkynetTask, bind=True, soft_time_limit=12, time_limit=15)
def maintenance(self: SkynetTask, group: str, event: dict[str, Any]) -> None:
    handlers.handle_maintenance(self.ctx, group, event)


@app.task(name=UPDATE_TASK, base=SkynetTask, bind=True, soft_time_limit=UPDATE_HARD_LIMIT - 20,
          time_limit=UPDATE_HARD_LIMIT)
def update(self: SkynetTask, rollout_id: str, ticket: int) -> None:
    handlers.handle_update(self.ctx, rollout_id, ticket)
    if restart_requested(self.ctx.settings.root):
        # A new agent is installed and this ticket is reported: a warm shutdown of the worker
        # (this pool process's parent) lets this task finish and its message be acknowledged,
        # then ``skynet worker`` re-executes itself on the new version.
        os.kill(os.getppid(), signal.SIGTERM)


@app.task(name=TAKE_TICKET_TASK, base=SkynetTask, bind=True, time_limit=60)
def take_ticket(self: SkynetTask, rollout_id: str) -> None:
    handlers.handle_take_ticket(self.ctx, rollout_id)


@app.task(name=RE_REGISTER_TASK, base=SkynetTask, bind=True, time_limit=60, quiet_success=True)
def re_register(self: SkynetTask, reason: str = "heartbeat") -> None:
    # Heartbeats run in the worker's main process now (workers.launch.heartbeat_step); this task
    # serves heartbeat messages that an older agent left in its own queue before it updated itself.
    membership.heartbeat(self.ctx)


@app.task(name=DRAIN_TASK, base=SkynetTask, bind=True, time_limit=60)
def drain(self: SkynetTask, drain: bool = True) -> None:
    handlers.handle_drain(self.ctx, drain)


@app.task(name=REGISTRY_CHANGED_TASK, base=SkynetTask, bind=True, time_limit=60)
def registry_changed(self: SkynetTask) -> None:
    from skynet_tasks.proxy.runtime import sync_proxy

    sync_proxy(self.ctx)
