"""The pool's child of an idle instance stops a minute after its last task, not before (workers/lazy_pool.py)."""

from __future__ import annotations

import pytest
from celery.worker import autoscale

from workers import lazy_pool
from workers.lazy_pool import CHECK_EVERY, POOL_KEEPALIVE, LazyChild


class Pool:
    """A pool of one child, as billiard's says it: how many, and the shrinks asked of it."""

    def __init__(self) -> None:
        self.num_processes = 1
        self.shrunk = 0

    def shrink(self, n: int) -> None:
        self.num_processes -= n
        self.shrunk += n

    def grow(self, n: int) -> None:
        self.num_processes += n

    def maintain_pool(self) -> None:
        pass


def scaler_at(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> tuple[LazyChild, Pool]:
    for module in (lazy_pool, autoscale):  # Celery's part notes the task's time, ours compares it
        monkeypatch.setattr(module, "monotonic", lambda: clock[0])
    pool = Pool()
    scaler = LazyChild(pool, 1, 0, worker=None)
    monkeypatch.setattr(type(scaler), "qty", property(lambda self: 0))  # no task reserved
    return scaler, pool


def test_the_idle_child_stops_once_a_minute_has_passed_since_its_last_task(monkeypatch):
    clock = [1000.0]
    scaler, pool = scaler_at(monkeypatch, clock)
    scaler.on_task_received(object())  # a task came at 1000 s

    for at in (1000.0 + CHECK_EVERY, 1000.0 + POOL_KEEPALIVE - 1):  # the loop's checks before the minute
        clock[0] = at
        scaler.maybe_scale()
        assert pool.num_processes == 1

    clock[0] = 1000.0 + POOL_KEEPALIVE + CHECK_EVERY  # the first check after it
    scaler.maybe_scale()
    assert pool.shrunk == 1 and pool.num_processes == 0


def test_the_event_loop_asks_every_few_seconds_not_every_minute():
    assert LazyChild(Pool(), 1, 0, worker=None).keepalive == CHECK_EVERY < POOL_KEEPALIVE


def test_a_task_arriving_starts_the_child_again(monkeypatch):
    clock = [1000.0]
    scaler, pool = scaler_at(monkeypatch, clock)
    pool.num_processes = 0
    monkeypatch.setattr(type(scaler), "qty", property(lambda self: 1))  # one task reserved, no child

    scaler.maybe_scale(req=object())

    assert pool.num_processes == 1
