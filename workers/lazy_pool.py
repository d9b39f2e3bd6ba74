"""The pool's one child, started by the first task and kept while tasks keep coming (Celery's autoscaler).

An idle instance then runs one process instead of two. The child lives ``POOL_KEEPALIVE``
seconds after its last task: a rollout's ticket notification starts it, and it is still
there when the instance's turn to update comes, so the hand-off pays no start.
"""

from __future__ import annotations

from typing import Any

from celery.worker.autoscale import Autoscaler

# Longer than a rollout of a large group takes to reach its last member (about 2 s a ticket).
POOL_KEEPALIVE = 600.0


class LazyChild(Autoscaler):
    """Celery's autoscaler, keeping an idle child ``POOL_KEEPALIVE`` seconds instead of 30."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["keepalive"] = POOL_KEEPALIVE
        super().__init__(*args, **kwargs)
