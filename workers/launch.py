"""Starting an instance's worker: identity, own queue, first registration, then ``celery worker``.

The worker consumes three queues: its group's build queue (the first member to
receive a build builds), its group's maintenance FIFO queue (conductor steps,
one at a time) and its own queue (directed work). Concurrency 1 and prefetch 1:
an instance does one thing at a time, and never holds a FIFO message it is not
running.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from skynet_tasks import handlers, names
from skynet_tasks.context import Context
from skynet_tasks.queues import instance_queue
from skynet_tasks.settings import Settings
from workers.identity import resolve_identity

log = logging.getLogger(__name__)


def worker_queues(settings: Settings) -> list[str]:
    return [
        names.build_queue(settings.env, settings.group),
        names.maintenance_queue(settings.env, settings.group),
        names.instance_queue(settings.env, settings.instance_id),
    ]


def heartbeat_step(ctx: Context) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that asks the worker to re-register every heartbeat interval."""

    class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = {"celery.worker.consumer.tasks:Tasks"}

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.timer_ref: Any = None

        def start(self, consumer: Any) -> None:
            self.timer_ref = consumer.timer.call_repeatedly(ctx.settings.heartbeat_interval, self.beat, priority=10)

        def beat(self) -> None:
            try:
                handlers.send_heartbeat(ctx)
            except Exception:  # noqa: BLE001 - a missed beat shows as an aging heartbeat, never a crash
                log.exception("could not send the heartbeat")

        def stop(self, consumer: Any) -> None:
            if self.timer_ref is not None:
                self.timer_ref.cancel()

    return Heartbeat


def run_worker(loglevel: str = "INFO") -> None:
    """Prepare this instance and run its Celery worker in this process until it is stopped."""
    resolve_identity()
    settings = Settings.from_env().require_instance()
    from skynet_tasks import tasks  # noqa: F401 - registers the tasks
    from skynet_tasks.app import app

    ctx = Context.create(settings, app)
    ctx.queues.ensure(instance_queue(settings.env, settings.instance_id))
    ctx.ledger.ensure_group(settings.group, settings.repo, settings.branch)
    settings.root.mkdir(parents=True, exist_ok=True)
    handlers.handle_re_register(ctx, "boot")
    app.steps["consumer"].add(heartbeat_step(ctx))
    log.info("instance %s of group %s starting its worker", settings.instance_id, settings.group)
    app.worker_main([
        "worker", "--queues", ",".join(worker_queues(settings)), "--concurrency", "1",
        "--prefetch-multiplier", "1", "--hostname", f"{settings.instance_id}@skynet", "--loglevel", loglevel,
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ])
