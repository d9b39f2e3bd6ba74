"""The pool's one child, started by the first task and stopped after a minute without one (Celery's autoscaler).

An idle instance then runs one process instead of two. A rollout's ticket notification starts the
child, and it stays while tasks keep coming; a member whose turn comes more than
``POOL_KEEPALIVE`` seconds after its ticket forks a new one when its update arrives, which costs
milliseconds (the child is a fork of a worker that has everything loaded), against the tens of
megabytes an idle child holds for as long as it lives.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from celery.worker.autoscale import Autoscaler

POOL_KEEPALIVE = 60.0  # seconds without a task before the child stops
CHECK_EVERY = 5.0  # how often the worker's event loop asks whether it may


class LazyChild(Autoscaler):
    """Celery's autoscaler, stopping an idle child ``POOL_KEEPALIVE`` seconds after its last task.

    Celery's own checks as often as its keepalive (``hub.call_repeatedly(keepalive, …)``), so a
    keepalive of a minute would leave a child up to two: the check runs every ``CHECK_EVERY``
    seconds, and the idle time is compared with ``POOL_KEEPALIVE`` here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["keepalive"] = CHECK_EVERY
        super().__init__(*args, **kwargs)

    def scale_down(self, n: int) -> Any:
        """Stop ``n`` idle children once no task came for ``POOL_KEEPALIVE`` seconds (else nothing)."""
        times = [t for t in (self._last_scale_up, self._last_task_received) if t is not None]
        if times and monotonic() - max(times) > POOL_KEEPALIVE:
            return self._shrink(n)
        return None
