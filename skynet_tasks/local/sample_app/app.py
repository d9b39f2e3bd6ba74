"""Skynet's sample app: answers which instance served the request and which release it runs."""

import json
import os
import pathlib
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


class Handler(BaseHTTPRequestHandler):
    """Answers every GET with JSON: the instance, release, version and greeting."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        """Answer which instance and release served the request."""
        body = json.dumps({"instance": INSTANCE, "release": RELEASE, "version": MESSAGE, "greeting": GREETING,
                           "path": self.path, "pid": os.getpid()}).encode()
        self.send_response(200)
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
