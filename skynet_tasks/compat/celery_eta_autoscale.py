"""Celery's autoscaler and a task held for its ETA: the pool grows when the task is due, not at the next check.

Celery's autoscaler looks at the worker's reserved tasks when a message arrives
(``consumer.on_task_message``) and then every ``keepalive`` seconds. A task with an ETA
(a countdown) is not reserved when it arrives: the consumer holds it on its timer, and
``Consumer.apply_eta_task`` reserves it when it is due and hands it to the pool, without
asking the autoscaler. A worker whose pool had scaled down to no process (Skynet's lazy
child, ``workers/lazy_pool.py``: an idle instance runs one process) then left the task
waiting until the autoscaler's next check, up to ``CHECK_EVERY`` seconds, or until another
message arrived. A member told to prepare a moment later (``skynet.prepare`` with a
countdown) started its child only when its update came, on the hand-off's path.

The patch asks the autoscaler once the due task is reserved, as an arriving one does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from skynet_tasks.compat.patching import Patch, replace


def _scaling(apply_eta_task: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    @functools.wraps(apply_eta_task)
    def apply_and_scale(self: Any, task: Any) -> None:
        apply_eta_task(self, task)
        scaler = getattr(self.controller, "autoscaler", None)  # None: a worker with a fixed pool
        if scaler is not None:
            scaler.maybe_scale()

    return apply_and_scale


def _apply(stack: ExitStack) -> None:
    from celery.worker.consumer.consumer import Consumer

    replace(stack, Consumer, "apply_eta_task", _scaling(Consumer.apply_eta_task))


PATCH = Patch("eta_autoscale", "celery", ">=5.7,<5.8", _apply)
install = PATCH.install
uninstall = PATCH.uninstall
