"""``prepare``: this instance's turn comes next; its pool child starts now, not when its update arrives.

The worker's one pool child is started by the first task and stopped after a minute without one
(``workers.lazy_pool``), and a ticket request runs in the worker's main process
(``workers.main_process_tasks``): a member waiting its turn runs one process. Its child would then
start (a fork, then its AWS clients) when its update arrives, on the hand-off's path. The conductor
sends this when a ticket becomes the next to start (``conductor.batches.newly_next``), so the child
starts while the instance before it updates; the update then finds it ready.
"""

from __future__ import annotations

from skynet_tasks.app import app
from skynet_tasks.messages import PREPARE_TASK
from skynet_tasks.tasks.base import SkynetTask


@app.task(name=PREPARE_TASK, base=SkynetTask, bind=True, time_limit=60, quiet_success=True)
def prepare(self: SkynetTask) -> None:
    """Run in the pool child (starting it), once its AWS clients and broker channel are ready."""
    self.ctx  # noqa: B018 - waits for the child's warm-up (tasks.base.warm_up) to have built them
