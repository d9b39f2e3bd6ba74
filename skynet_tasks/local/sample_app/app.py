"""Skynet's sample app: answers which instance served the request and which release it runs.

``unhealthy-after.txt`` in the release, with lines ``ticket:N SECONDS``, makes the app of ticket N
turn unhealthy: its ``/health`` answers 503 from SECONDS after its first answer on, which is how the
tests show a bake time (``min_healthy_time``) catching an app that fails after its health check passed.
"""

import json
import os
import pathlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent
RELEASE = os.environ.get("SKYNET_RELEASE", "")
INSTANCE = os.environ.get("SKYNET_INSTANCE_ID", "")
MESSAGE = (HERE / "VERSION").read_text().strip() if (HERE / "VERSION").exists() else ""


def read_greeting():
    """The greeting from the instance's synced config (``app.json``), read once at start like most apps."""
    try:
        return json.loads(pathlib.Path(os.environ["SKYNET_CONFIG_DIR"], "app.json").read_text()).get("greeting")
    except (KeyError, OSError, ValueError, AttributeError):
        return None


GREETING = read_greeting()


def unhealthy_after():
    """Seconds after its first health answer that this app turns unhealthy (unhealthy-after.txt), or None."""
    rules = HERE / "unhealthy-after.txt"
    for line in rules.read_text().splitlines() if rules.exists() else ():
        ticket, _, seconds = line.strip().partition(" ")
        if ticket == f"ticket:{os.environ.get('SKYNET_TICKET', '')}" and seconds:
            return float(seconds)
    return None


UNHEALTHY_AFTER = unhealthy_after()
_first_health: list[float] = []  # when it first answered /health
_lock = threading.Lock()


def healthy_now():
    """Whether /health answers 200: always, unless unhealthy-after.txt names this app's ticket and its time passed."""
    if UNHEALTHY_AFTER is None:
        return True
    with _lock:
        if not _first_health:
            _first_health.append(time.monotonic())
        return time.monotonic() - _first_health[0] < UNHEALTHY_AFTER


class Handler(BaseHTTPRequestHandler):
    """Answers every GET with JSON: the instance, release, version and greeting."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        """Answer which instance and release served the request."""
        status = 503 if self.path == "/health" and not healthy_now() else 200
        body = json.dumps({"instance": INSTANCE, "release": RELEASE, "version": MESSAGE, "greeting": GREETING,
                           "path": self.path, "pid": os.getpid()}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - quiet
        """Log nothing: the proxy logs the requests."""


if __name__ == "__main__":
    # The instance's own address (its private address on EC2), where the proxies reach it.
    address = os.environ.get("SKYNET_ADDRESS") or "127.0.0.1"
    ThreadingHTTPServer((address, int(os.environ["PORT"])), Handler).serve_forever()
