"""Stopping what a local cluster started: process groups, and what an instance leaves running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from skynet_tasks.proctable import process_alive


def stop_process_group(pid: int, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Stop a process and its group: SIGTERM (or ``sig``), then SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while process_alive(pid):
        time.sleep(0.05)


def stop_app(root: Path) -> None:
    """Stop what an instance leaves running when its worker is gone: its app, and a proxy's nginx.

    Both are found through their pid files; nginx daemonizes into its own session,
    so stopping the worker's process group does not reach it.
    """
    for pid_file in (root / "run" / "app.pid", root / "rp" / "nginx.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        stop_process_group(pid, grace=5)
        pid_file.unlink(missing_ok=True)
