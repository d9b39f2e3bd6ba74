"""Helpers of the load balancer stand-in's tests: fake instances on loopback and the stand-in as a process.

Linux answers on all of 127.0.0.0/8, so 127.0.0.2 and 127.0.0.3 stand for two
instances listening on the same port, as two RP instances do on AWS.
"""

from __future__ import annotations

import errno
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from skynet_tasks.httpcheck import http_get
from skynet_tasks.local.motoserver import free_port

WORKTREE = Path(__file__).resolve().parent.parent
# Short enough that a test sees transitions in about a second, long enough for a loaded machine.
# Two instances' addresses on loopback.
A, B = "127.0.0.2", "127.0.0.3"
FAST_CHECK = {"path": "/health", "interval": 0.25, "timeout": 0.2, "healthy_threshold": 2, "unhealthy_threshold": 3}


class Instance(http.server.ThreadingHTTPServer):
    """An instance's HTTP server: ``/health`` answers ``health``; any other path answers its name.

    Every answer is recorded in order in ``events`` (``"pass"``, ``"fail"``, ``"request"``)
    before it is sent, so a test can tell what the load balancer knew when it routed.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, name: str) -> None:
        self.name, self.health, self.events = name, 200, list[str]()
        self.health_delay = 0.0  # seconds /health waits before answering
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def record(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.events)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx on an RP instance
    disable_nagle_algorithm = True  # as nginx's tcp_nodelay: any delay left is the load balancer's
    server: Instance

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            time.sleep(self.server.health_delay)
            status = self.server.health
            self.server.record("pass" if status == 200 else "fail")
        else:
            status = 200
            self.server.record("request")
            if self.path.startswith("/slow"):
                time.sleep(0.5)
        body = self.server.name.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass


@contextmanager
def instance_pair() -> Iterator[tuple[Instance, Instance]]:
    """Instances on A and B, on one port, stopped when the block ends."""
    a, b = instances(A, B)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def instances(*hosts: str) -> list[Instance]:
    """One instance per host, all on one port."""
    for _ in range(20):
        port, started = free_port(hosts[0]), []
        try:
            for host in hosts:
                started.append(Instance(host, port, host))
            return started
        except OSError as error:
            for instance in started:
                instance.stop()
            if error.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no port free on every host")


def write_targets(path: Path, targets: Iterable[str]) -> None:
    """Replace the targets file atomically, as the lead's cluster does."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(f"{t}\n" for t in targets))
    os.replace(partial, path)


class Balancer:
    """``python -m skynet_tasks.local.loadbalancer`` running, with its log in a file."""

    def __init__(self, tmp: Path, targets: Iterable[str], check: dict[str, Any] | None = None,
                 option: str = "--health-check-json") -> None:
        self.targets_file, self.log_file = tmp / "targets.txt", tmp / "lb.log"
        write_targets(self.targets_file, targets)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skynet_tasks.local.loadbalancer", "--listen", "127.0.0.1:0",
             "--targets-file", str(self.targets_file), option, json.dumps(check or FAST_CHECK),
             "--ready-file", str(tmp / "ready.json")],
            stdout=subprocess.PIPE, stderr=self.log_file.open("wb"), text=True, cwd=WORKTREE,
            env={**os.environ, "PYTHONPATH": str(WORKTREE)})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # EOF at once if it died: no hang
        assert line.startswith("listening on 127.0.0.1:"), f"no ready line: {line!r}\n{self.log()}"
        self.port = int(line.rsplit(":", 1)[1])

    def get(self, path: str = "/") -> tuple[int, str]:
        status, body = http_get("127.0.0.1", self.port, path, timeout=5)
        return status, body.decode()

    def log(self) -> str:
        return self.log_file.read_text()

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        wait_until(lambda: text in self.log(), timeout, f"{text!r} in the log:\n{self.log()}")

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
