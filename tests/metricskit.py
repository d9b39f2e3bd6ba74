"""Helpers of the metrics tests: a rollout driven through the real conductor steps, and a real Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.ledger import Ledger
from skynet_tasks.step import decide_and_write_until_settled

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def drive_rollout(ledger: Ledger, group: str, rollout_id: str, members: tuple[str, ...], handoff: float,
                  fail_last: bool = False) -> None:
    """A rollout of ``members`` (the first one its canary) through the conductor steps an instance's report,
    acknowledgement and ticket requests cause, each instance acknowledging ``handoff`` seconds after the report
    before it."""
    live = set(members)
    rollout = Rollout(rollout_id, group, "d" * 40, canary=members[0], created_at=time.time())
    decision = decide_and_write_until_settled(ledger, group, RolloutReady(rollout), live)
    for other in members[1:]:
        decide_and_write_until_settled(ledger, group, TicketTaken(rollout_id, other), live)
    for number, member in enumerate(members, start=1):
        time.sleep(handoff / 2)  # "your number came up" travelling to the instance
        assert ledger.acknowledge_ticket(rollout_id, number, member) is not None, decision.notes
        failed = fail_last and number == len(members)
        reported_at = time.time()
        time.sleep(handoff / 2)  # the report travelling to the conductor
        decision = decide_and_write_until_settled(ledger, group, UpdateReported(
            rollout_id, number, member, not failed, "boom" if failed else None, reported_at), live)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """``app`` served on a loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


class Prometheus:
    """A real Prometheus server scraping one target, with its own config and data under a temp folder."""

    def __init__(self, folder: Path, target: str, token: str) -> None:
        self.folder = folder
        self.port = free_port()
        (folder / "token").write_text(token)
        host = urllib.parse.urlsplit(target).netloc
        (folder / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: skynet\n"
            "    scrape_interval: 1s\n"
            f"    authorization: {{credentials_file: {folder / 'token'}}}\n"
            f"    static_configs: [{{targets: ['{host}']}}]\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (it reads its config; no web UI assets needed)."""
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """Stop the server this object started."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a GET on Prometheus' HTTP API."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback, our own server
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str, deadline: float = 30.0) -> list[dict[str, Any]]:
        """The instant vector of ``expression``, waiting (up to ``deadline`` s) until it is not empty."""
        stop = time.monotonic() + deadline
        while True:
            try:
                result = self.api("query", query=expression)["result"]
                if result:
                    return list(result)
            except OSError:
                pass  # not listening yet
            if time.monotonic() > stop:
                raise TimeoutError(f"{expression}: no samples after {deadline}s; log: "
                                   f"{(self.folder / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.25)
