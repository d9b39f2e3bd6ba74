"""Writing the merged config to the instance atomically, and git's use of its deploy keys.

``<config_dir>`` (default ``/etc/config``) is a symlink to one complete generation,
``.<name>.d/<version>/`` next to it. A sync writes the new generation in a temporary
folder, renames it into place, then swaps the symlink (a new link renamed over the
old one): a reader resolves either the old or the new tree, never half of one, and
a sync that fails before the swap leaves the previous config in place. Each file is
written whole (a short write goes on, a full disk refuses the generation) and every file
and folder of a generation is fsynced before it can become current, the swap after it: a
power loss never leaves a current generation with truncated files. The previous
generation is kept, which is what a failed config update returns to.

Inside a generation, ``*.pem`` deploy keys are in ``ssh/`` (folder 0700, keys 0600),
``*.crt``/``*.key`` in ``tls/``, other files at their own path; deploy and TLS keys 0600, the rest
0640 (``paths.mode_of``): on an instance, the folder is setgid to the app's group, so the app reads
its settings and secrets and never a deploy key.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from skynet_tasks import gitrepo
from skynet_tasks.config.merge import MergedConfig
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.links import link_target_name, switch_link

log = logging.getLogger(__name__)

MARKER = ".skynet-config"
KEEP_GENERATIONS = 4


@dataclass(frozen=True)
class ConfigDir:
    """An instance's config directory: the symlink readers use and the generations behind it."""

    path: Path  # what readers use: a symlink to the current generation

    @property
    def generations(self) -> Path:
        """The folder holding every generation, ``.<name>.d`` beside the symlink."""
        return self.path.parent / f".{self.path.name}.d"

    @property
    def ssh(self) -> Path:
        """The deploy keys' folder, inside the current generation."""
        return self.path / "ssh"

    @property
    def known_hosts(self) -> Path:
        """Host keys git's SSH has accepted: outside the generations, so they survive a sync."""
        return self.generations / "known_hosts"

    def current_version(self) -> str | None:
        """The version the symlink points to, or None if there is no current generation."""
        return link_target_name(self.path)

    def write(self, merged: MergedConfig) -> str:
        """Write ``merged`` as a complete generation (if not already there); return its version."""
        version = merged.version
        target = self.generations / version
        if (target / MARKER).exists():
            return version
        self.generations.mkdir(parents=True, exist_ok=True, mode=0o755)
        temp = self.generations / f".tmp-{secrets.token_hex(4)}"
        try:
            temp.mkdir(mode=0o755)
            for item in merged.files.values():
                _write_file(temp / item.placed_at, item.data, item.mode)
            if (temp / "ssh").exists():
                os.chmod(temp / "ssh", 0o700)
            _write_file(temp / MARKER, json.dumps({"version": version, "files": sorted(
                item.placed_at for item in merged.files.values())}).encode(), 0o644)
            _fsync_tree(temp)  # every file and folder on disk before the generation can become current
            if target.exists():
                shutil.rmtree(target)  # an earlier, incomplete attempt
            os.replace(temp, target)
            _fsync_folder(self.generations)
        except OSError as error:
            raise ConfigError(f"could not write config version {version} under {self.generations}: {error}") from None
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return version

    def activate(self, version: str) -> None:
        """Point the config directory at generation ``version`` atomically."""
        target = self.generations / version
        if not (target / MARKER).exists():
            raise ConfigError(f"config version {version} is not on this instance")
        if self.path.exists() and not self.path.is_symlink():
            # A config directory made by hand before Skynet managed it: kept as a generation of its own.
            self._keep_preexisting()
        switch_link(self.path, Path(self.generations.name) / version)
        _fsync_folder(self.path.parent)  # the switch itself survives a power loss

    def _keep_preexisting(self) -> None:
        """Move the hand-made config directory into the generations, by copy if it cannot be renamed."""
        kept = self.generations / f"preexisting-{secrets.token_hex(3)}"
        try:
            os.replace(self.path, kept)
            return
        except OSError as error:
            # On an overlay root (a container; an image with /etc/config baked in) a directory of the
            # lower layer cannot be renamed: rename(2) answers EXDEV unless the mount has redirect_dir,
            # as mv(1) knows. Copy it, then remove it; the symlink replaces it right after.
            if error.errno != errno.EXDEV:
                raise
        temp = self.generations / f".tmp-{secrets.token_hex(4)}"
        try:
            shutil.copytree(self.path, temp, symlinks=True)
            os.replace(temp, kept)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(self.path)
        log.info("config directory %s was made by hand: kept as %s", self.path, kept)

    def prune(self, keep: set[str]) -> None:
        """Drop old generations beyond the newest few, never one named in ``keep``."""
        if not self.generations.exists():
            return
        folders = sorted((p for p in self.generations.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for folder in folders[KEEP_GENERATIONS:]:
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    # Created with its final mode (O_EXCL: never through a planted file), then chmod past the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            # os.write may write less than asked (a nearly full disk, a signal): go on from there.
            # A write that cannot go on raises (ENOSPC...), and the whole generation is refused.
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, f"could not write {path}: the file system accepted no more bytes")
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    """Make the entries of folder ``path`` (names created, renamed) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` and ``root`` itself (its files were fsynced as written)."""
    for folder, _, _ in os.walk(root, topdown=False):
        _fsync_folder(Path(folder))


def git_ssh_environment(config: ConfigDir) -> dict[str, str]:
    """``GIT_SSH_COMMAND`` using exactly the deploy keys of the current config, or nothing without keys.

    ``IdentitiesOnly`` makes ssh offer only these keys (not an agent's or ``~/.ssh``'s),
    ``-F /dev/null`` ignores user ssh configs, ``BatchMode`` never prompts, and a
    host key is accepted the first time and pinned after that. A server that does not answer
    (its connection or banner, or a connection gone silent) ends the command within about
    ``gitrepo.STALL_SECONDS``, not the build's task.
    """
    keys = sorted(config.ssh.glob("*.pem")) if config.ssh.is_dir() else []
    if not keys:
        return {}
    alive = max(gitrepo.STALL_SECONDS // 4, 1)
    parts = ["ssh", "-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={config.known_hosts}",
             "-o", f"ConnectTimeout={max(gitrepo.STALL_SECONDS // 2, 1)}", "-o", f"ServerAliveInterval={alive}",
             "-o", "ServerAliveCountMax=4"]
    for key in keys:
        parts += ["-i", str(key)]
    return {"GIT_SSH_COMMAND": shlex.join(parts)}
