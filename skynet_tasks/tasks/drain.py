"""``drain``: an operator takes this instance out of the proxies (or puts it back) until undone."""

from __future__ import annotations

import logging

from skynet_tasks.app import app
from skynet_tasks.context import Context
from skynet_tasks.messages import DRAIN_TASK
from skynet_tasks.registration import register_self
from skynet_tasks.tasks.base import SkynetTask

log = logging.getLogger(__name__)


@app.task(name=DRAIN_TASK, base=SkynetTask, bind=True, time_limit=60)
def drain(self: SkynetTask, drain: bool = True) -> None:
    """Report this instance draining (or, with ``drain`` False, back in service) from now on."""
    handle_drain(self.ctx, drain)


def handle_drain(ctx: Context, drain: bool) -> None:
    """Operator drain: report this instance draining (the proxy drops it) until undone.

    Run in the worker's main process (``workers.main_process_tasks``), where the heartbeats run too: in
    the pool it waited for the child to start (the lazy pool stops it when idle), and a heartbeat meanwhile
    wrote the entry back to healthy over the operator's drain.
    """
    flag = ctx.layout.drain_flag
    if drain:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()
    else:
        flag.unlink(missing_ok=True)
    register_self(ctx, last_task="drain" if drain else "undrain")
    log.info("instance %s %s", ctx.settings.instance_id, "draining" if drain else "back in service")
