"""Starting an instance's worker: identity, own queue, first registration, then ``celery worker``.

An instance runs one Celery worker (``--role all``), at most two processes:

- the worker's **main process** consumes the instance's own queue and hands its tasks
  (builds, updates, ticket notifications, directed work) to the pool; it also runs the
  heartbeat and, on a thread and a broker connection of its own, the **conductor**: the
  group's maintenance FIFO queue, one message at a time (workers/conductor.py);
- the pool's one **child** runs the instance's tasks under their hard time limits. It is
  started when a task arrives and stopped after ``POOL_KEEPALIVE`` seconds without one
  (Celery's autoscaler, ``--autoscale 1,0``): an idle instance is one process.

A conductor step never waits behind a build or an update, which run in the child; a
child killed mid-task returns its message (``task_reject_on_worker_lost``). The roles
``work`` and ``conductor`` run either half alone, as a worker of its own (tests, and an
operator who wants them apart).
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import signal
import sys
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery import bootsteps
from celery.signals import worker_shutdown
from celery.worker import state as worker_state

from skynet_tasks import broadcast, build_user, logformat, membership, names
from skynet_tasks.agent import agent_path_environment, clear_restart, restart_requested
from skynet_tasks.aws import Aws
from skynet_tasks.compat import install_celery_patches, install_kombu_patches
from skynet_tasks.config.apply import sync_config
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.context import Context
from skynet_tasks.messages import DRAIN_TASK, TAKE_TICKET_TASK
from skynet_tasks.registration import register_self
from skynet_tasks.settings import Settings
from workers.conductor import Conductor, conductor_step
from workers.identity import resolve_identity
from workers.main_process_tasks import run_here_too

log = logging.getLogger(__name__)


ROLES = ("all", "work", "conductor")


def worker_queues(settings: Settings, role: str) -> list[str]:
    """The queues a worker of ``role`` consumes: the group's maintenance queue, or the instance's own."""
    if role == "conductor":
        return [names.maintenance_queue(settings.env, settings.group)]
    # ``all``: the maintenance queue too, but on the conductor's own consumer (workers/conductor.py).
    return [names.instance_queue(settings.env, settings.instance_id)]


def watch_lifecycle(ctx: Context, hook: str) -> None:
    """On EC2: when the auto scaling group terminates this instance, leave, stop, then let it go on."""
    from workers.lifecycle import Imds, complete_lifecycle, watch_termination

    imds, terminating = Imds(), threading.Event()

    def on_terminate() -> None:
        terminating.set()
        membership.leave(ctx)
        os.kill(os.getpid(), signal.SIGTERM)  # warm shutdown: the task in hand finishes first

    def after_shutdown(**_: Any) -> None:
        if terminating.is_set():
            complete_lifecycle(imds, ctx.aws.client("autoscaling"), hook, ctx.settings.instance_id)

    worker_shutdown.connect(after_shutdown, weak=False)
    threading.Thread(target=watch_termination, args=(imds, ctx.settings.instance_id, on_terminate,
                                                     threading.Event()), name="lifecycle", daemon=True).start()


def holds_a_task() -> bool:
    """Whether the worker holds a task (reserved or running): the heartbeat's timers then do nothing."""
    return bool(worker_state.reserved_requests or worker_state.active_requests)


def heartbeat_step(ctx: Context, conductor: Conductor | None = None) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that runs this instance's heartbeat every heartbeat interval, when idle.

    A heartbeat is the ``re_register`` task, run through its own ``run`` with ``ctx`` as
    this process's task context (the body an operator's ``skynet instance re-register``
    message runs in the pool). It runs here, in the worker's main process, on the event
    loop that hands messages to the pool: while it runs, no task starts; and it runs
    only while the worker holds no task, so it never overlaps an update (which
    ``report_not_updating`` relies on) and never overwrites the draining state an update
    registers. A task in hand keeps the registration fresh itself
    (``registration.keep_registered``). Running it here instead of as a message to the
    instance's own queue saves three SQS requests per beat (send, receive, delete): a
    third of an idle instance's requests. Each beat also starts the ``conductor``'s thread
    again if it ended (``Conductor.revive``), so a fresh heartbeat proves both consume. A timer of the
    step's own looks for the group's stalled builds (``membership.build_check_interval``).
    """
    from skynet_tasks.tasks.base import SkynetTask
    from skynet_tasks.tasks.re_register import re_register

    SkynetTask.adopt(ctx)  # the pool processes forked from this one build their own

    class Heartbeat(bootsteps.StartStopStep):
        """Runs this instance's heartbeat on the consumer's timer."""

        requires = {"celery.worker.consumer.tasks:Tasks"}

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.timer_ref: Any = None
            self.builds_ref: Any = None

        def start(self, consumer: Any) -> None:
            # The first beat at a random point of the interval: instances launched together (a scale-out, the
            # local cluster) would otherwise beat together for good, a burst of requests every interval, which
            # a hand-off landing in it could wait behind. Registered at boot, its entry is fresh meanwhile.
            interval = ctx.settings.heartbeat_interval
            phase = secrets.randbelow(max(int(interval * 1000), 1)) / 1000
            self.timer_ref = consumer.timer.call_after(phase, self.first_beat, args=(consumer,), priority=10)

        def first_beat(self, consumer: Any) -> None:
            """The first beat; then one every interval, and a look for stalled builds every ``build_check_interval``."""
            self.timer_ref = consumer.timer.call_repeatedly(ctx.settings.heartbeat_interval, self.beat, priority=10)
            self.builds_ref = consumer.timer.call_repeatedly(membership.build_check_interval(ctx.settings),
                                                             self.check_builds, priority=10)
            self.beat()

        def beat(self) -> None:
            """One heartbeat (the ``re_register`` task's body), unless the worker holds a task."""
            if conductor is not None:
                conductor.revive()
            if holds_a_task():
                return
            try:
                re_register.run(reason="heartbeat")
            except Exception:  # noqa: BLE001 - a missed beat shows as an aging heartbeat, never a crash
                log.exception("heartbeat failed")

        def check_builds(self) -> None:
            """Send again the builds of the group nobody runs, unless the worker holds a task (as ``beat``)."""
            if holds_a_task():
                return
            try:
                membership.nudge_stalled_builds(ctx)
            except Exception:  # noqa: BLE001 - the next look tries again
                log.exception("could not look for stalled builds")

        def stop(self, consumer: Any) -> None:
            for ref in (self.timer_ref, self.builds_ref):
                if ref is not None:
                    ref.cancel()

    return Heartbeat


def run_worker(loglevel: str = "INFO", role: str = "all") -> None:
    """Prepare this instance and run its Celery worker until stopped (see the module docstring)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    # The worker's own level from the start: its boot (config sync, first registration) is logged at INFO,
    # before Celery sets the level it was given (``skynet --log-level`` defaults to WARNING).
    logformat.set_level(loglevel)
    # Every SKYNET_* variable is checked before anything is asked of instance metadata or AWS.
    Settings.from_env()
    resolve_identity()  # fills this process's SKYNET_INSTANCE_ID, SKYNET_ADDRESS, SKYNET_GROUP on EC2
    settings = Settings.from_env().require_instance()
    if role != "conductor":
        restart_on_installed_agent(settings, loglevel, role)  # returns only if already on it (or none installed)
        clear_restart(settings.root)
    from skynet_tasks import tasks  # noqa: F401 - registers the tasks
    from skynet_tasks.app import app, configure
    from skynet_tasks.tasks.re_register import handle_re_register

    # Before the first message: kombu's clients share the process's model loader, among the rest
    # (skynet_tasks/compat/kombu_*.py).
    install_kombu_patches()
    conductor, ctx = None, None
    if role == "all":
        from skynet_tasks.tasks.base import warm_up

        conductor = Conductor(app, names.maintenance_queue(settings.env, settings.group), warm_up=warm_up)
    if role != "conductor":
        ctx = Context.create(settings, app)
    # The tasks' app, with the settings of this start and the group's topic: its queue made and subscribed first.
    configure(app, settings, broadcast.join(ctx).topic if ctx else broadcast.group_topic(Aws(), settings))
    if ctx is not None:
        ctx.ledger.ensure_group(settings.group, settings.repo, settings.branch)
        settings.root.mkdir(parents=True, exist_ok=True)
        for line in build_user.stop_orphaned_steps_at_start(ctx.layout.build):  # a killed predecessor's steps
            log.warning("%s", line)
        sync_config_at_boot(ctx)
        if membership.converge_at_boot(ctx) is None:
            membership.restart_app_if_down(ctx)
        worker_shutdown.connect(lambda **_: membership.leave(ctx), weak=False)
        # From its first registration until Celery's worker takes SIGTERM over.
        signal.signal(signal.SIGTERM, stopped_while_starting)
    try:
        if ctx is not None:
            handle_re_register(ctx, "boot")
            start_serving(ctx, app, conductor)
        if conductor is not None:
            app.steps["consumer"].add(conductor_step(conductor))
        # ``all``: the worker's lines say ``work``, its conductor steps' lines ``conductor`` (workers/conductor.py).
        logformat.bind_process(instance=settings.instance_id, group=settings.group,
                               role="work" if role == "all" else role)
        log.info("instance %s of group %s starting its %s worker", settings.instance_id, settings.group, role)
        run_celery(app, settings, role, loglevel)
    except StoppedWhileStarting:
        log.info("stopped while starting, after registering: shutting down as the worker would")
        worker_shutdown.send(sender=None)  # leaves the group; stops an rp instance's proxy
        raise
    finally:
        if role != "conductor" and restart_requested(settings.root):
            log.info("restarting the worker on the newly installed agent")
            restart_on_installed_agent(settings, loglevel, role, always=True)


class StoppedWhileStarting(SystemExit):
    """SIGTERM came after the instance registered and before Celery's worker took the signal over."""


def stopped_while_starting(signum: int, _frame: Any) -> None:
    """SIGTERM's handler from the first registration until Celery's worker installs its own (whose warm
    shutdown sends the ``worker_shutdown`` that takes the instance out of the registry). Without it the
    signal ended the process at once and left its entry to the proxies until it aged out. The group is
    left once the exception has unwound what was running (``run_worker``): not in here, in the middle of
    whatever AWS call the signal interrupted."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise StoppedWhileStarting(128 + signum)


def start_serving(ctx: Context, app: Any, conductor: Conductor | None) -> None:
    """What a registered instance starts before its worker: the lifecycle watch, the proxy of an ``rp``
    instance, the heartbeat."""
    if ctx.settings.lifecycle_hook:
        watch_lifecycle(ctx, ctx.settings.lifecycle_hook)
    if ctx.settings.layer == "rp":
        from skynet_tasks.proxy.runtime import start_proxy, stop_proxy

        poll = start_proxy(ctx)
        worker_shutdown.connect(lambda **_: stop_proxy(ctx, poll), weak=False)
        register_self(ctx, last_task="proxy started")
    app.steps["consumer"].add(heartbeat_step(ctx, conductor))


def run_celery(app: Any, settings: Settings, role: str, loglevel: str) -> None:
    """Run the Celery worker of ``role`` in this process, one task at a time, until it stops."""
    # kombu's SQS receives wait on libcurl timers 1,000 times too long, and could start up to a
    # second after the task before them was acknowledged (skynet_tasks/compat/kombu_*.py; installed once)
    install_kombu_patches()
    install_celery_patches()  # a task held for its countdown starts the lazy pool's child when due
    # Everything loaded so far is never collected: the collector's passes would write to (and so copy)
    # the pages a pool child forked later shares with this process (the gc.freeze documentation).
    gc.freeze()
    # A JSON log is read by machines: no banner (the "starting its worker" line says the same).
    quiet = ["--quiet"] if logformat.current_format() == "json" else []
    # The whole worker: one child at most, started by the first task, stopped after a minute idle (lazy_pool).
    pool = ["--autoscale", "1,0"] if role == "all" else ["--concurrency", "1"]
    if role == "all":
        app.conf.worker_autoscaler = "workers.lazy_pool:LazyChild"
    if role != "conductor":  # a ticket request or a drain starts no pool child (workers/main_process_tasks.py)
        run_here_too(app, [TAKE_TICKET_TASK, DRAIN_TASK])
    app.worker_main([
        *quiet, "worker", "--queues", ",".join(worker_queues(settings, role)), *pool,
        "--prefetch-multiplier", "1", "--hostname", f"{settings.instance_id}-{role}@skynet", "--loglevel", loglevel,
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ])


def sync_config_at_boot(ctx: Context) -> None:
    """Apply the layered config before the app starts; on a refusal keep the config already on disk."""
    try:
        sync_config(ctx)
    except (ConfigError, OSError, ClientError, BotoCoreError) as error:
        log.error("config not synced at boot, the previous config stays: %s", error)
    except Exception:  # noqa: BLE001 - any other failure too: a worker that exits here restarts into it forever
        log.exception("config not synced at boot (unexpected error), the previous config stays")


def restart_on_installed_agent(settings: Settings, loglevel: str, role: str, always: bool = False) -> None:
    """Re-execute ``skynet worker`` with the installed agent first on PYTHONPATH (see ``skynet_tasks.agent``)."""
    environment = agent_path_environment(settings.root, dict(os.environ))
    if environment is None and not always:
        return
    # --loglevel, not --log-level: the installed agent may be of a version that knows only that spelling.
    argv = [sys.executable, "-m", "skynet_tasks.cli", "worker", "--role", role, "--loglevel", loglevel]
    clear_restart(settings.root)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment or dict(os.environ))  # noqa: S606  # nosec B606 - fixed argv
