"""The heartbeat runs in the work worker's main process, and only while the worker holds no task.

A heartbeat that ran during an update would overwrite the draining state the update
registered (the proxies would route to an app that is restarting), and would tell the
conductor that the instance is not updating while it is (``report_not_updating``).
"""

from __future__ import annotations

import pytest
from celery.worker import state as worker_state

from workers import launch


class Request:
    """Stands in for a Celery request (the worker's state keeps weak references to them)."""


@pytest.fixture
def beats(monkeypatch):
    done: list[object] = []
    monkeypatch.setattr(launch.membership, "heartbeat", done.append)
    return done


@pytest.mark.parametrize("held", [worker_state.reserved_requests, worker_state.active_requests])
def test_a_heartbeat_is_skipped_while_the_worker_holds_a_task_and_runs_once_it_is_idle(beats, held):
    step = launch.heartbeat_step("the instance's context")(parent=None)  # type: ignore[arg-type]
    request = Request()
    held.add(request)
    try:
        step.beat()
        assert beats == []
    finally:
        held.discard(request)
    step.beat()
    assert beats == ["the instance's context"]
