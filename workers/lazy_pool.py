"""The pool's one child, started by the first task and stopped after a minute without one (Celery's autoscaler).

An idle instance then runs one process instead of two. A rollout's ticket notification starts the
child, and it stays while tasks keep coming; a member whose turn comes more than
``POOL_KEEPALIVE`` seconds after its ticket forks a new one when its update arrives, which costs
milliseconds (the child is a fork of a worker that has everything loaded), against the tens of
megabytes an idle child holds for as long as it lives.
"""

from __future__ import annotations

from typing import Any

from celery.worker.autoscale import Autoscaler

POOL_KEEPALIVE = 60.0


class LazyChild(Autoscaler):
    """Celery's autoscaler, keeping an idle child ``POOL_KEEPALIVE`` seconds instead of 30."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["keepalive"] = POOL_KEEPALIVE
        super().__init__(*args, **kwargs)
