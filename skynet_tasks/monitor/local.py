"""The dashboard of a local cluster: a random token, ``skynet monitor serve`` on a free loopback port."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks.local.motoserver import free_port
from skynet_tasks.settings import child_environment
from skynet_tasks.webhook.local import wait_answering

TOKEN_FILE = "dashboard-token"  # noqa: S105  # nosec B105 - a file name, not a secret


@dataclass(frozen=True)
class LocalDashboard:
    """A started local dashboard: its process id, URL and the file holding its token."""

    pid: int
    url: str
    token_file: str


def write_token(path: Path) -> str:
    """Write a fresh random token to ``path`` (mode 0600, created so before anything is written)."""
    path.unlink(missing_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    return token


def start_local_dashboard(directory: Path, environment: dict[str, str], env: str = "local",
                          timeout: float = 30.0) -> LocalDashboard:
    """Start the dashboard of the cluster in ``directory`` and wait until it answers.

    The process runs in its own session (stop it with its process group); it logs
    to ``directory/logs/dashboard.log``.
    """
    token_file = directory / TOKEN_FILE
    write_token(token_file)
    port = free_port()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    with open(directory / "logs" / "dashboard.log", "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "skynet_tasks.cli", "monitor", "serve", "--env", env, "--host", "127.0.0.1",
             "--port", str(port), "--token-file", str(token_file)],
            env=child_environment(**environment), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(f"{url}/health", timeout, process)
    except RuntimeError:
        process.kill()
        raise
    return LocalDashboard(pid=process.pid, url=url, token_file=str(token_file))
