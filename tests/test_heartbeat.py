"""The heartbeat runs in the work worker's main process, and only while the worker holds no task; instances
started together beat at different points of the interval.

A heartbeat that ran during an update would overwrite the draining state the update
registered (the proxies would route to an app that is restarting), and would tell the
conductor that the instance is not updating while it is (``report_not_updating``).
A heartbeat is the ``re_register`` task's own body, run with the main process's
Context; the pool processes that process forks build their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from skynet_tasks.tasks import base
from workers import launch

pytestmark = pytest.mark.timeout(60)

# In a process of its own: running a task's body configures and finalizes the process's Celery app.
BEATS = """
from celery.worker import state as worker_state
from skynet_tasks.app import app, configure
from skynet_tasks.settings import Settings
from skynet_tasks.tasks import re_register
from workers import launch

configure(app, Settings.from_env())  # as the worker does at start
beats = []
re_register.heartbeat = lambda ctx, reason: beats.append(f"{ctx} ({reason})")  # what the task's body runs
step = launch.heartbeat_step("the instance's context")(parent=None)


class Request:
    '''Stands in for a Celery request (the worker's state keeps weak references to them).'''


for held in (worker_state.reserved_requests, worker_state.active_requests):
    request = Request()
    held.add(request)
    step.beat()
    held.discard(request)
    print("while a task is held:", beats, flush=True)
step.beat()
print("once idle:", beats, flush=True)
"""


def test_a_heartbeat_is_skipped_while_the_worker_holds_a_task_and_runs_the_re_register_task_once_idle():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_")}
    result = subprocess.run([sys.executable, "-c", BEATS], capture_output=True, text=True, env=environment,
                            timeout=45, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "while a task is held: []",
        "while a task is held: []",
        "once idle: [\"the instance's context (heartbeat)\"]",
    ]


def test_a_process_forked_from_one_that_adopted_a_context_builds_its_own(monkeypatch):
    # Given the worker's main process adopted its context (its heartbeat's)
    monkeypatch.setattr(base.SkynetTask, "_context", None)
    monkeypatch.setattr(base.SkynetTask, "_context_pid", 0)
    base.SkynetTask.adopt("the main process's context")  # type: ignore[arg-type]
    assert base.SkynetTask.context() == "the main process's context"
    built: list[str] = []
    monkeypatch.setattr(base, "settings_of", lambda app: "the worker's settings")
    monkeypatch.setattr(base.Context, "create", lambda settings, app: built.append(settings) or "a pool's context")

    # When a pool process forked from it (another pid) asks for its tasks' context
    parent = os.getpid()
    monkeypatch.setattr(base.os, "getpid", lambda: parent + 1)

    # Then it builds its own rather than sharing the parent's AWS connections
    assert base.SkynetTask.context() == "a pool's context"
    assert base.SkynetTask.context() == "a pool's context"
    assert built == ["the worker's settings"]


class Timer:
    """The consumer's timer, recording what is scheduled: (kind, seconds, function, args)."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float, Any, tuple[Any, ...]]] = []

    def call_after(self, secs: float, fun: Any, args: tuple[Any, ...] = (), priority: int = 0) -> str:
        self.scheduled.append(("after", secs, fun, args))
        return "first"

    def call_repeatedly(self, secs: float, fun: Any, args: tuple[Any, ...] = (), priority: int = 0) -> str:
        self.scheduled.append(("every", secs, fun, args))
        return "every"


def test_instances_started_together_beat_at_different_points_of_the_interval_then_every_interval(monkeypatch):
    monkeypatch.setattr(base.SkynetTask, "_context", None)  # (the step adopts its context: put back after)
    monkeypatch.setattr(base.SkynetTask, "_context_pid", 0)
    ctx = SimpleNamespace(settings=SimpleNamespace(heartbeat_interval=30.0, build_nudge_after=45.0))
    firsts = []
    for _ in range(20):  # twenty instances of a scale-out, started at once
        step, timer, beats = launch.heartbeat_step(ctx)(parent=None), Timer(), []
        step.beat = lambda beats=beats: beats.append("beat")
        step.start(SimpleNamespace(timer=timer))
        (kind, phase, first_beat, args), = timer.scheduled
        assert kind == "after" and 0 <= phase < 30 and beats == []
        firsts.append(phase)

        first_beat(*args)

        assert beats == ["beat"] and timer.scheduled[1][:2] == ("every", 30.0) and step.timer_ref == "every"
    assert len(set(firsts)) > 10  # spread over the interval, not one burst of requests every 30 s


@pytest.mark.parametrize(("heartbeat", "nudge_after", "every"), [(60.0, 45.0, 60.0), (2.0, 45.0, 22.5)])
def test_every_member_looks_for_stalled_builds_on_a_timer_of_its_own_skipping_while_it_holds_a_task(
        monkeypatch, heartbeat, nudge_after, every):
    # Given a member's heartbeat step (AWS's one-minute heartbeat, or a local cluster's two seconds)
    monkeypatch.setattr(base.SkynetTask, "_context", None)  # (the step adopts its context: put back after)
    monkeypatch.setattr(base.SkynetTask, "_context_pid", 0)
    ctx = SimpleNamespace(settings=SimpleNamespace(heartbeat_interval=heartbeat, build_nudge_after=nudge_after))
    looks: list[object] = []
    monkeypatch.setattr(launch.membership, "nudge_stalled_builds", looks.append)
    step, timer = launch.heartbeat_step(ctx)(parent=None), Timer()
    step.beat = lambda: None
    step.start(SimpleNamespace(timer=timer))
    (_, _, first_beat, args), = timer.scheduled

    # When its first beat comes
    first_beat(*args)

    # Then it looks every heartbeat, or every half of the nudge's delay if that is longer: never one beat in ten
    (kind, seconds, check, _), = [entry for entry in timer.scheduled if entry[2] == step.check_builds]
    assert (kind, seconds) == ("every", every)
    # and, as a beat, not while it holds a task (an update in hand), once idle again
    request = type("Request", (), {})()
    launch.worker_state.active_requests.add(request)
    try:
        check()
    finally:
        launch.worker_state.active_requests.discard(request)
    assert looks == []
    check()
    assert looks == [ctx]
