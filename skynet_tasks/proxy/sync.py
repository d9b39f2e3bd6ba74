"""Keeping nginx in step with the endpoints table: on notification, and on a slow poll as a safety net."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks.proxy.model import build_view
from skynet_tasks.proxy.nginx import ApplyResult, NginxControl
from skynet_tasks.proxy.render import TEMPLATES, RenderError, render
from skynet_tasks.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class RpSync:
    """Renders one env's registry into this proxy's nginx configuration and applies it."""

    registry: Registry
    env: str
    max_age: float
    control: NginxControl
    listen_port: int
    listen_address: str  # the instance's own address: where the load balancer reaches it
    webhook: str | None = None
    template_dir: Path = TEMPLATES
    instance_id: str = ""  # this proxy's registry entry, where it says how fresh its configuration is
    # The registry entries the last render left out, and why: status.json shows them (``refused_entries``).
    refused: tuple[str, ...] = ()

    def render_now(self, now: float | None = None) -> str:
        """The nginx configuration for the registry as it is now (entries that are not safe left out)."""
        now = time.time() if now is None else now
        entries = [(record_layer, endpoint) for record_layer in self._layers()
                   for endpoint in self.registry.live(self.env, record_layer, self.max_age, now=now)]
        view = build_view(self.env, entries, self.webhook)
        self.refused = view.refused
        return render(view, self.env, self.control.run_dir, self.listen_port, listen_address=self.listen_address,
                      template_dir=self.template_dir)

    def _layers(self) -> list[str]:
        return sorted({str(r.get("layer")) for r in self.registry.records(self.env) if r.get("layer")})

    def sync_once(self, publish: bool = True) -> ApplyResult:
        """Render from the registry and apply; ``publish=False`` (the poll) records the sync only on a change."""
        read_at = time.time()  # every registry read of the render happens after this
        try:
            text = self.render_now(read_at)
        except RenderError as error:
            log.error("%s; keeping the running configuration", error)
            self.control.record_error(str(error))
            return ApplyResult(False, False, False, str(error))
        before = self.control.status().get("refused_entries")
        result = self.control.apply(text, read_at=read_at, refused=self.refused)
        if result.reloaded:
            log.info("nginx reloaded with a new configuration (%s)", result.sha256[:12])
        if result.ok and (publish or result.changed):
            self.publish_synced(read_at)
        if result.ok and (publish or before != list(self.refused)):
            self.publish_refused()
        return result

    def start(self) -> ApplyResult:
        """Render from the registry and start nginx with it.

        NginxError if the configuration does not validate or nginx does not start.
        """
        self.control.prepare()
        read_at = time.time()
        result = self.control.start(self.render_now(read_at), read_at, refused=self.refused)
        if result.ok:
            self.publish_synced(read_at)
            self.publish_refused()
        return result

    def publish_synced(self, read_at: float) -> None:
        """Tell updating instances that nginx now serves the registry as of ``read_at``.

        An instance about to restart its app waits until every proxy has synced after
        it registered as draining (``skynet_tasks.proxy.handshake``).
        """
        if self.instance_id:
            try:
                self.registry.mark_synced(self.env, "rp", self.instance_id, read_at)
            except Exception:  # noqa: BLE001 - waiters fall back to their timeout; the sync itself succeeded
                log.exception("could not record the proxy's sync in the registry")

    def publish_refused(self) -> None:
        """Show the entries this proxy's configuration leaves out where ``skynet status`` and the dashboard
        read (its registry entry's ``refused_entries``), or that it leaves none out."""
        if self.instance_id:
            try:
                self.registry.record_refused(self.env, "rp", self.instance_id, self.refused)
            except Exception:  # noqa: BLE001 - only the report is lost; the configuration is applied
                log.exception("could not record the proxy's refused entries in the registry")

    def run(self, stop: threading.Event, interval: float) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set; errors are logged, never fatal."""
        while not stop.wait(interval):
            try:
                self.sync_once(publish=False)  # no registry write per idle poll
            except Exception:  # noqa: BLE001 - the poll is the safety net: it must keep running
                log.exception("proxy sync failed; trying again in %.0fs", interval)
