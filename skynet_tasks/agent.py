"""Skynet updating itself: agent wheels in the repo bucket, installed per instance, then a worker restart.

Layout in the repo bucket: ``agent/<version>/<wheel file>`` and ``agent/<version>/manifest.json``
(version, file name, sha256, size). On an instance, each version is installed with
``pip install --no-deps --target <root>/agent/<version>`` (the dependencies are the
running agent's), and ``<root>/agent/current`` points at the one ``skynet worker``
puts first on ``PYTHONPATH`` when it starts (``activate_agent_path``).

The restart keeps the message in hand: the ticket is reported and its task returns
first; only then does the worker shut down warmly (the message is acknowledged as
its task completes) and ``skynet worker`` re-executes itself on the new version.

Trusted: the operator who pushes a wheel. Checked anyway: the wheel's name and
version, its sha256 against the manifest after download, and that the installed
package reports the version it claims before ``current`` is switched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess  # nosec B404 - pip and python, with fixed arguments
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateFailed
from skynet_tasks.links import switch_link
from skynet_tasks.settings import child_environment

log = logging.getLogger(__name__)

# PEP 427 file name: skynet-<version>-<python tag>-<abi tag>-<platform tag>.whl (name normalized).
WHEEL_NAME = re.compile(r"skynet-(?P<version>[0-9][0-9A-Za-z.+_!]{0,63})-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-"
                        r"[A-Za-z0-9_.]+\.whl")
MAX_WHEEL_BYTES = 50 * 1024 * 1024
RESTART_FLAG = "restart-requested"


class AgentError(ValueError):
    """An agent wheel that cannot be published or installed."""


@dataclass(frozen=True)
class AgentManifest:
    """A published agent version: its wheel's file name, sha256 and size (``agent/<version>/manifest.json``)."""

    version: str
    filename: str
    sha256: str
    size: int

    @property
    def wheel_key(self) -> str:
        """Where the wheel of this version is in the repo bucket."""
        return f"agent/{self.version}/{self.filename}"

    @staticmethod
    def key(version: str) -> str:
        """Where the manifest of ``version`` is in the repo bucket."""
        return f"agent/{version}/manifest.json"

    @classmethod
    def from_json(cls, text: str) -> AgentManifest:
        """The manifest in ``text``; AgentError if it names a wheel of another version."""
        data = json.loads(text)
        manifest = cls(version=str(data["version"]), filename=str(data["filename"]), sha256=str(data["sha256"]),
                       size=int(data["size"]))
        if wheel_version(manifest.filename) != manifest.version:
            raise AgentError(f"agent manifest of {manifest.version} names wheel {manifest.filename!r}")
        return manifest


def wheel_version(filename: str) -> str:
    """The version in a skynet wheel's file name; AgentError for a file name that is not one."""
    match = WHEEL_NAME.fullmatch(filename)
    if match is None:
        raise AgentError(f"{filename!r} is not a wheel of the skynet package (skynet-<version>-…whl)")
    return match["version"].replace("_", "-")


def publish_wheel(store: Any, wheel: Path) -> AgentManifest:
    """Upload ``wheel`` and its manifest to the repo bucket; return the manifest."""
    version = wheel_version(wheel.name)
    size = wheel.stat().st_size
    if size > MAX_WHEEL_BYTES:
        raise AgentError(f"{wheel.name} is larger than {MAX_WHEEL_BYTES} bytes")
    manifest = AgentManifest(version, wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest(), size)
    store.upload_file(wheel, manifest.wheel_key, "application/zip")
    store.put_text(AgentManifest.key(version), json.dumps(manifest.__dict__), "application/json")
    return manifest


def agent_root(ctx: Context) -> Path:
    """The folder the instance's agent versions are installed in."""
    return ctx.settings.root / "agent"


def install_agent(ctx: Context, rollout: dict[str, Any]) -> str:
    """Install the rollout's agent version beside the running one, switch to it, and ask for a restart."""
    from skynet_tasks import __version__

    version = str(rollout.get("release", ""))
    lines = [f"agent {__version__} -> {version}"]
    try:
        manifest = AgentManifest.from_json(ctx.store.get_text(AgentManifest.key(version)))
    except (ValueError, KeyError) as error:
        raise UpdateFailed(f"agent {version}: bad manifest: {error}", "\n".join(lines)) from None
    root = agent_root(ctx)
    target = root / version
    if not (target / ".installed").exists():
        _install_wheel(ctx, manifest, root, target, lines)
    _check_version(target, version, lines)
    switch_link(root / "current", version)
    lines.append(f"agent/current -> {version}; the worker restarts once this ticket is reported")
    request_restart(ctx)
    return "\n".join(lines) + "\n"


def _install_wheel(ctx: Context, manifest: AgentManifest, root: Path, target: Path, lines: list[str]) -> None:
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / manifest.filename
    try:
        ctx.store.download(manifest.wheel_key, wheel)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != manifest.sha256 or wheel.stat().st_size != manifest.size:
            raise UpdateFailed(f"agent wheel {manifest.filename}: sha256 {digest} does not match the manifest",
                               "\n".join(lines))
        shutil.rmtree(target, ignore_errors=True)
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell  # nosec B603
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-compile",
             "--disable-pip-version-check", "--target", str(target), str(wheel)],
            capture_output=True, text=True, timeout=300, check=False)
        lines.append(f"pip install {manifest.filename}: exit {result.returncode}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise UpdateFailed(f"agent {manifest.version}: pip install failed", "\n".join(lines))
        (target / ".installed").write_text(manifest.sha256)
    finally:
        wheel.unlink(missing_ok=True)


def _check_version(target: Path, version: str, lines: list[str]) -> None:
    """The installed package must import and report the version it was published as."""
    probe = subprocess.run(  # noqa: S603 - fixed argument list, no shell  # nosec B603
        [sys.executable, "-c", "import skynet_tasks, skynet_tasks.tasks; print(skynet_tasks.__version__)"],
        env=child_environment(PYTHONPATH=str(target)), capture_output=True, text=True, timeout=120, check=False)
    reported = probe.stdout.strip()
    lines.append(f"installed agent reports {reported or probe.stderr.strip()[-500:]}")
    if probe.returncode != 0 or reported != version:
        raise UpdateFailed(f"agent {version} does not start (reports {reported or 'nothing'})", "\n".join(lines))


def request_restart(ctx: Context) -> None:
    """Ask the worker to restart (into a newly installed agent) once its task is done."""
    flag = ctx.layout.run_dir / RESTART_FLAG
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()


def restart_requested(root: Path) -> bool:
    """Whether a restart has been asked for in the instance root ``root``."""
    return (root / "run" / RESTART_FLAG).exists()


def clear_restart(root: Path) -> None:
    """Forget a requested restart (the worker has restarted)."""
    (root / "run" / RESTART_FLAG).unlink(missing_ok=True)


def agent_path_environment(root: Path, environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with so the installed agent comes first; None if already so (or none)."""
    current = root / "agent" / "current"
    if not current.is_symlink():
        return None
    path = str(current.resolve())
    if environ.get("SKYNET_AGENT_PATH") == path:
        return None
    others = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep)
              if p and p != environ.get("SKYNET_AGENT_PATH")]
    return {**environ, "PYTHONPATH": os.pathsep.join([path, *others]), "SKYNET_AGENT_PATH": path}
