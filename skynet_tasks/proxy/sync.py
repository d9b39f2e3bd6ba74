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
    registry: Registry
    env: str
    max_age: float
    control: NginxControl
    listen_port: int
    webhook: str | None = None
    template_dir: Path = TEMPLATES

    def render_now(self) -> str:
        now = time.time()
        entries = [(record_layer, endpoint) for record_layer in self._layers()
                   for endpoint in self.registry.live(self.env, record_layer, self.max_age, now=now)]
        view = build_view(self.env, entries, self.webhook)
        return render(view, self.env, self.control.run_dir, self.listen_port, template_dir=self.template_dir)

    def _layers(self) -> list[str]:
        return sorted({str(r.get("layer")) for r in self.registry.records(self.env) if r.get("layer")})

    def sync_once(self) -> ApplyResult:
        try:
            text = self.render_now()
        except RenderError as error:
            log.error("%s; keeping the running configuration", error)
            self.control.record_error(str(error))
            return ApplyResult(False, False, False, str(error))
        result = self.control.apply(text)
        if result.reloaded:
            log.info("nginx reloaded with a new configuration (%s)", result.sha256[:12])
        return result

    def start(self) -> ApplyResult:
        self.control.prepare()
        return self.control.start(self.render_now())

    def run(self, stop: threading.Event, interval: float) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set; errors are logged, never fatal."""
        while not stop.wait(interval):
            try:
                self.sync_once()
            except Exception:  # noqa: BLE001 - the poll is the safety net: it must keep running
                log.exception("proxy sync failed; trying again in %.0fs", interval)
