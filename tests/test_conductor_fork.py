"""A fork of the worker's process (its pool child's start) waits for the conductor's step in hand.

A fork copies only the forking thread; a lock the conductor's thread holds in a step stays held in the
child for good. A pool child forked 9 ms before its conductor's step ended never ran its first task
(CI, 2026-12-03). No AWS here: a step is played by holding the conductor's step lock, as ``run_received`` does.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from celery import Celery

import workers.conductor as conductor_module
from workers.conductor import Conductor

pytestmark = pytest.mark.timeout(30)


def seconds_a_fork_took() -> float:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os._exit(0)  # the child: nothing to do
    waited = time.monotonic() - started
    os.waitpid(pid, 0)
    return waited


def test_a_fork_waits_until_the_conductors_step_in_hand_ends():
    conductor = Conductor(Celery("fork-test"), "queue")
    in_step, step_ends = threading.Event(), threading.Event()

    def step() -> None:
        with conductor.stepping:
            in_step.set()
            step_ends.wait(5)

    threading.Thread(target=step, daemon=True).start()
    assert in_step.wait(5)
    threading.Timer(0.5, step_ends.set).start()
    assert seconds_a_fork_took() >= 0.4
    assert conductor.stepping.acquire(blocking=False)  # the parent's lock is free again after the fork
    conductor.stepping.release()


def test_the_steps_of_a_receive_run_holding_the_lock_a_fork_waits_for(monkeypatch):
    conductor = Conductor(Celery("fork-test"), "queue")
    free_during_step: list[bool] = []

    def run_received(app, received, visibility) -> None:
        other = threading.Thread(target=lambda: free_during_step.append(conductor.stepping.acquire(blocking=False)))
        other.start()
        other.join()

    monkeypatch.setattr(conductor_module, "run_received", run_received)
    conductor.run_received()
    assert free_during_step == [False]
    assert seconds_a_fork_took() < 1  # and no fork waits once the steps are done
