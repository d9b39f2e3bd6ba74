"""``registry_changed``: a proxy instance re-renders nginx from the registry now (``proxy.notify`` sent it)."""

from __future__ import annotations

from skynet_tasks.app import app
from skynet_tasks.messages import REGISTRY_CHANGED_TASK
from skynet_tasks.tasks.base import SkynetTask


@app.task(name=REGISTRY_CHANGED_TASK, base=SkynetTask, bind=True, time_limit=60)
def registry_changed(self: SkynetTask) -> None:
    """Sync this proxy's nginx configuration with the registry."""
    from skynet_tasks.proxy.runtime import sync_proxy

    sync_proxy(self.ctx)
