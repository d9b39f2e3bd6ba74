"""The receiver of a local cluster, and GitHub-shaped test payloads for it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks.local.motoserver import free_port
from skynet_tasks.settings import child_environment
from skynet_tasks.webhook.signature import sign
from skynet_tasks.webhook.wsgi import PATH


@dataclass(frozen=True)
class LocalReceiver:
    """A started local receiver: its process id, the URL GitHub would post to, and its secret's file."""

    pid: int
    url: str
    secret_file: str


def start_local_receiver(directory: Path, environment: dict[str, str], app_repo: Path, env: str = "local",
                         layer: str = "api", timeout: float = 20.0,
                         branches_by_layer: Mapping[str, str] | None = None) -> LocalReceiver:
    """Start ``skynet webhook serve`` for a local cluster: a random secret, the sample app's routes.

    ``main`` goes to ``layer``; each further layer in ``branches_by_layer`` gets the pushes to its branch.
    """
    secret_file = directory / "webhook-secret"
    if not secret_file.exists():
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_hex(32) + "\n")
    routes_file = directory / "webhook-routes.json"
    repo_name = app_repo.name.removesuffix(".git")
    tracked = {layer: "main", **(branches_by_layer or {})}
    routes_file.write_text(json.dumps({"routes": [
        {"repo": repo_name, "branch": branch, "env": env, "layer": each}
        for each, branch in tracked.items()]}, indent=2) + "\n")
    port = free_port()
    (directory / "logs").mkdir(exist_ok=True)
    with open(directory / "logs" / "webhook.log", "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "skynet_tasks.cli", "webhook", "serve", "--env", env, "--port", str(port),
             "--secret-file", str(secret_file), "--routes", str(routes_file)],
            env=child_environment(**environment), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    wait_answering(f"http://127.0.0.1:{port}/health", timeout, process)
    return LocalReceiver(pid=process.pid, url=f"http://127.0.0.1:{port}{PATH}", secret_file=str(secret_file))


def wait_answering(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``url`` answers without an HTTP error.

    RuntimeError if ``process`` exits first, or after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310  # nosec B310 - an http URL we built
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def push_payload(repo_name: str, branch: str, before: str, after: str, message: str = "A commit",
                 owner: str = "skynet-local", forced: bool = False, pushed_at: int | None = None) -> dict[str, Any]:
    """A push payload shaped like GitHub's documented one (the fields Skynet reads, and their neighbours).

    ``pushed_at`` (the push's time, seconds) defaults to now; ``forced`` says the push moved the branch back.
    """
    commit = {"id": after, "message": message, "timestamp": "2026-11-25T00:00:00Z", "distinct": True,
              "author": {"name": "Skynet Demo", "email": "demo@skynet.invalid"}, "added": [], "removed": [],
              "modified": ["VERSION"]}
    return {
        "ref": f"refs/heads/{branch}", "before": before, "after": after, "created": False, "deleted": False,
        "forced": forced, "base_ref": None, "compare": f"https://github.com/{owner}/{repo_name}/compare",
        "commits": [commit], "head_commit": commit,
        "repository": {"id": 1, "name": repo_name, "full_name": f"{owner}/{repo_name}", "private": True,
                       "default_branch": "main", "clone_url": f"https://github.com/{owner}/{repo_name}.git",
                       "pushed_at": int(time.time()) if pushed_at is None else pushed_at},
        "pusher": {"name": "demo", "email": "demo@skynet.invalid"}, "sender": {"login": "demo", "id": 1},
    }


def send_webhook(url: str, secret: bytes, event: str, payload: dict[str, Any], delivery: str | None = None,
                 timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """POST a signed webhook the way GitHub does; return the status and the JSON answer."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s): {url!r}")
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - http(s), checked above
        "Content-Type": "application/json", "X-GitHub-Event": event, "User-Agent": "GitHub-Hookshot/skynet",
        "X-GitHub-Delivery": delivery or secrets.token_hex(16), "X-Hub-Signature-256": sign(secret, body)})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310 - checked
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return error.code, dict(json.loads(error.read() or b"{}"))
