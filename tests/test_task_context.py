"""A process builds its tasks' Context once, even when two threads ask for it at once (a pool child's
warm-up thread and its first task)."""

from __future__ import annotations

import threading
import time

import pytest

from skynet_tasks.tasks import base
from skynet_tasks.tasks.base import SkynetTask

pytestmark = pytest.mark.timeout(30)


def test_two_threads_asking_at_once_share_one_build(monkeypatch):
    # Given a process without a Context, whose build takes a while (creating AWS clients)
    builds = []

    def slow_build(settings, app):
        builds.append(threading.get_ident())
        time.sleep(0.3)
        return object()

    monkeypatch.setattr(base.Context, "create", slow_build)
    monkeypatch.setattr(base, "settings_of", lambda app: None)
    monkeypatch.setattr(SkynetTask, "_context", None)
    monkeypatch.setattr(SkynetTask, "_context_pid", 0)

    # When two threads ask for it at the same moment
    got = []
    threads = [threading.Thread(target=lambda: got.append(SkynetTask.context())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    # Then it was built once, and both got that one
    assert len(builds) == 1
    assert len(got) == 2 and got[0] is got[1]
