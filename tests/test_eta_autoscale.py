"""A task held for its countdown grows the lazy pool when it is due (``skynet_tasks.compat.celery_eta_autoscale``).

Celery's own ``Consumer.apply_eta_task`` is run on a consumer that records what it is asked: the
due task reserved and handed to the pool, and, with the patch, the autoscaler asked once after.
Without the patch Celery never asks it (the "still needed" test: an upgrade that fixes this fails it).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.worker import state as worker_state
from celery.worker.consumer.consumer import Consumer

from skynet_tasks.compat import celery_eta_autoscale

pytestmark = pytest.mark.timeout(30)


class Scaler:
    """The worker's autoscaler: how often it was asked, and how many tasks were reserved then."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def maybe_scale(self) -> None:
        self.asked.append(len(worker_state.reserved_requests))


class Request:
    """A due task (the worker's state keeps weak references to its requests, by id too)."""

    id = "a-prepare-held-for-its-countdown"


def due_task(scaler: Scaler | None) -> tuple[Any, list[str]]:
    """A consumer of a worker with ``scaler`` (None: a fixed pool), and what was handed to its pool."""
    handed: list[str] = []
    consumer = SimpleNamespace(controller=SimpleNamespace(autoscaler=scaler),
                               on_task_request=lambda task: handed.append("to the pool"),
                               qos=SimpleNamespace(decrement_eventually=lambda: None))
    return consumer, handed


@pytest.fixture
def request_():
    task = Request()
    yield task
    worker_state.reserved_requests.discard(task)
    worker_state.requests.pop(task.id, None)


def test_still_needed_celery_never_asks_the_autoscaler_when_a_held_task_is_due(request_):
    assert not celery_eta_autoscale.PATCH.installed
    scaler = Scaler()
    consumer, handed = due_task(scaler)

    Consumer.apply_eta_task(consumer, request_)

    assert handed == ["to the pool"] and scaler.asked == []  # a pool of no process waits for the next check


def test_with_the_patch_a_due_task_asks_the_autoscaler_once_it_is_reserved(request_):
    scaler = Scaler()
    consumer, handed = due_task(scaler)

    with celery_eta_autoscale.PATCH.applied():
        Consumer.apply_eta_task(consumer, request_)

    assert handed == ["to the pool"] and scaler.asked == [1]  # the task counted: the child starts


def test_with_the_patch_a_worker_without_an_autoscaler_just_runs_the_task(request_):
    consumer, handed = due_task(None)

    with celery_eta_autoscale.PATCH.applied():
        Consumer.apply_eta_task(consumer, request_)

    assert handed == ["to the pool"]
