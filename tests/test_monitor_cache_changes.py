"""The change token the pages wait on: probed at most once per interval for every tab, bounded waits."""

from __future__ import annotations

import threading
import time

import pytest

from skynet_tasks.monitor.changes import ChangeWatch

pytestmark = pytest.mark.timeout(60)


class Probe:
    """A probe whose answer the test sets, counting its calls."""

    def __init__(self) -> None:
        self.value = 0
        self.calls = 0
        self.fail = False

    def __call__(self) -> int:
        self.calls += 1
        if self.fail:
            raise RuntimeError("table unreadable")
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_token_changes_only_when_the_probe_does_and_probes_once_per_interval():
    probe, clock = Probe(), Clock()
    watch = ChangeWatch(probe, interval=2.0, clock=clock)
    first = watch.token()
    assert [watch.token() for _ in range(50)] == [first] * 50
    assert probe.calls == 1
    clock.now += 2.0
    assert watch.token() == first and probe.calls == 2  # probed again, nothing changed
    probe.value = 1
    assert watch.token() == first  # changed, but not probed before the interval is over
    clock.now += 2.0
    assert watch.token() != first and probe.calls == 3


def test_a_failing_probe_keeps_the_token():
    probe, clock = Probe(), Clock()
    watch = ChangeWatch(probe, interval=1.0, clock=clock)
    first = watch.token()
    probe.fail = True
    clock.now += 1.0
    assert watch.token() == first


def test_two_dashboards_never_share_a_token():
    assert ChangeWatch(Probe()).token() != ChangeWatch(Probe()).token()


def test_a_wait_returns_at_once_for_an_old_token_and_at_the_timeout_for_the_current_one():
    watch = ChangeWatch(Probe(), interval=0.05)
    current = watch.token()
    started = time.monotonic()
    assert watch.wait("an-old-token", 10) == (current, True)
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert watch.wait(current, 0.3) == (current, True)
    assert 0.25 <= time.monotonic() - started < 2


def test_a_waiter_wakes_when_the_env_changes_or_an_action_is_taken():
    probe = Probe()
    watch = ChangeWatch(probe, interval=0.05)
    current = watch.token()
    timer = threading.Timer(0.3, lambda: setattr(probe, "value", 7))
    timer.start()
    started = time.monotonic()
    changed, waited = watch.wait(current, 10)
    assert waited and changed != current and time.monotonic() - started < 3
    threading.Timer(0.3, watch.bump).start()
    started = time.monotonic()
    assert watch.wait(changed, 10)[0] != changed and time.monotonic() - started < 3


def test_past_the_cap_a_poll_is_answered_at_once_and_told_to_come_back():
    watch = ChangeWatch(Probe(), interval=0.05, max_waiters=2)
    current = watch.token()
    waiting = [threading.Thread(target=watch.wait, args=(current, 1)) for _ in range(2)]
    for thread in waiting:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert watch.wait(current, 10) == (current, False)
    assert time.monotonic() - started < 0.5
    for thread in waiting:
        thread.join(5)


def test_with_no_long_poll_allowed_every_poll_is_answered_at_once():
    watch = ChangeWatch(Probe(), interval=0.05, max_waiters=0)  # ``skynet monitor serve --threads 1``
    current = watch.token()
    started = time.monotonic()
    assert watch.wait(current, 10) == (current, False)
    assert time.monotonic() - started < 0.5
