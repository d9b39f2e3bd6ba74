"""Serving a WSGI application with gunicorn: the webhook receiver and the dashboard.

gunicorn hands the application a lazily read body stream, so the receiver checks
the declared size and content type before reading anything, and reads at most
one byte past its limit. gunicorn is the one WSGI server of the project.

gunicorn is in the ``webhook`` and ``dashboard`` extras, not in an instance's
base install: import this module only from the commands that serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, application: Callable[..., Any], options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        return self.application


def serve_wsgi(application: Callable[..., Any], host: str, port: int, threads: int, name: str) -> None:
    """Serve until SIGTERM/SIGINT: one worker process named ``name``, ``threads`` threads (the work is I/O-bound)."""
    _Server(application, {
        "bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread", "threads": threads,
        "timeout": 60, "graceful_timeout": 10, "keepalive": 5, "errorlog": "-", "loglevel": "warning",
        "proc_name": name,
    }).run()
