"""Installing a release on an instance, and returning to the previous one when it fails.

Layout under the instance root: ``releases/<sha>/`` (extracted artifacts, the
last few kept), ``current`` (a symlink switched atomically), ``downloads/``,
``run/`` and ``logs/``. An update downloads the artifact, checks its sha256
and size against the ledger's record of the release (never against the manifest
beside it in the bucket: see ``artifacts``), extracts it safely, runs the lifecycle hooks (as the
build user, like every command from the repository: ``build_user``), switches
``current``, restarts the app and waits for it to be healthy. If any step fails
after the switch, ``current`` goes back to the previous release, the app is
restarted on it, and the instance keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from skynet_tasks import artifacts, build_user, buildspec, commands
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.httpcheck import http_get
from skynet_tasks.links import link_target_name, switch_link
from skynet_tasks.services import ServiceError, Services

log = logging.getLogger(__name__)

# Limits on what an artifact may unpack to: a hostile or broken one must not fill the disk.
MAX_RELEASE_BYTES = 2 * 1024**3
MAX_RELEASE_FILES = 200_000


class UpdateFailed(Exception):
    """The update did not succeed; the instance is back on its previous release (if it had one)."""

    def __init__(self, reason: str, log_text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_text = log_text


@dataclass(frozen=True)
class InstanceLayout:
    """The folders and links of an instance under its root."""

    root: Path

    @property
    def releases(self) -> Path:
        """The folder of extracted releases, one folder per sha."""
        return self.root / "releases"

    @property
    def current(self) -> Path:
        """The symlink to the release the app runs."""
        return self.root / "current"

    @property
    def downloads(self) -> Path:
        """Where artifacts are downloaded before they are checked."""
        return self.root / "downloads"

    @property
    def run_dir(self) -> Path:
        """The app's runtime folder."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        """The folder of the app's and the updates' logs."""
        return self.root / "logs"

    @property
    def build(self) -> Path:
        """The build user's folder: build work trees, and the requests of every repository command."""
        return self.root / "build"

    @property
    def drain_flag(self) -> Path:
        """Present while an operator has drained this instance: it reports itself draining."""
        return self.root / "draining"

    def current_release(self) -> str | None:
        """The sha ``current`` points to, or None if there is no current release."""
        return link_target_name(self.current)


def switch_current(layout: InstanceLayout, sha: str) -> None:
    """Point ``current`` at ``releases/<sha>`` atomically (a new link renamed over the old one)."""
    switch_link(layout.current, Path("releases") / sha)


@dataclass
class UpdateContext:
    """What an update needs to know about where it runs."""

    layout: InstanceLayout
    store: ArtifactStore
    services: Services
    env: dict[str, str]  # SKYNET_* variables the hooks and the app see (instance, ticket, port…)
    app_port: int
    health_host: str = "127.0.0.1"
    keep_releases: int = 5
    on_progress: Callable[[str], None] | None = None


def fetch_release(ctx: UpdateContext, manifest: artifacts.Manifest, expected: artifacts.ExpectedRelease,
                  log_: commands.CommandLog) -> Path:
    """Make sure ``releases/<sha>`` holds the artifact the ledger recorded; return that folder.

    ``manifest`` comes from S3 and is untrusted; ``expected`` comes from the ledger. Nothing on disk
    is touched before the manifest agrees with the ledger and its names are valid.
    """
    sha = artifacts.check_manifest(manifest, expected)
    target = ctx.layout.releases / sha
    if (target / ".skynet-release").exists():
        log_.note(f"release {sha} already on disk")
        return target
    if target.exists():
        shutil.rmtree(target)  # a half-finished earlier attempt
    ctx.layout.downloads.mkdir(parents=True, exist_ok=True)
    ctx.layout.releases.mkdir(parents=True, exist_ok=True)
    tarball = ctx.layout.downloads / f"{sha}.tar.gz"
    try:
        size = ctx.store.download(manifest.artifact_key, tarball)
        log_.note(f"downloaded {manifest.artifact_key}: {size} bytes")
        artifacts.verify(tarball, expected.sha256, expected.size)
        artifacts.extract_safely(tarball, target, max_bytes=MAX_RELEASE_BYTES, max_files=MAX_RELEASE_FILES)
        # The app's user (www-data) reads the release and writes none of it: its folder is as open as
        # the files in it (0755 and 0644 from the tarball), not the 0700 its staging folder was made with.
        target.chmod(0o755)
    finally:
        tarball.unlink(missing_ok=True)
    (target / ".skynet-release").write_text(manifest.to_json())
    return target


def install(ctx: UpdateContext, manifest: artifacts.Manifest, expected: artifacts.ExpectedRelease) -> str:
    """Install and start the release the ledger recorded as ``expected``; return the update log.

    ``manifest`` (read from S3) must describe exactly that release. Raise UpdateFailed after rolling back.
    """
    update_log = commands.CommandLog()
    previous = ctx.layout.current_release()
    update_log.note(f"updating from {previous or 'nothing'} to {expected.sha[:64]}")
    try:
        release_dir = fetch_release(ctx, manifest, expected, update_log)
        spec = buildspec.load_buildspec(release_dir / "skynet.yml")
    except (artifacts.ArtifactError, buildspec.BuildSpecError, OSError) as error:
        update_log.note(f"refused: {error}")
        raise UpdateFailed(f"release {expected.sha[:64]} refused: {error}", update_log.text()) from error
    sha = manifest.sha  # checked by fetch_release: the ledger's sha, a valid name
    env = commands.base_environment({**ctx.env, "SKYNET_RELEASE": sha, "PORT": str(ctx.app_port)})
    hook_timeout = spec.update_timeout
    try:
        for hook in spec.hooks.before_install + spec.hooks.after_install:
            run_repository_command(ctx, hook, cwd=release_dir, env=env, timeout=hook_timeout, log_=update_log)
        switch_current(ctx.layout, sha)
        update_log.note(f"current -> releases/{sha}")
        _progress(ctx, "starting")
        ctx.services.restart(spec.service.command if spec.service else None, ctx.layout.current, env)
        for hook in spec.hooks.start + spec.hooks.validate:
            run_repository_command(ctx, hook, cwd=ctx.layout.current, env=env, timeout=hook_timeout,
                                   log_=update_log)
        wait_healthy(ctx, spec, env, update_log)
    except (commands.CommandFailed, ServiceError, OSError) as error:
        update_log.note(f"update failed: {error}")
        roll_back(ctx, previous, update_log)
        raise UpdateFailed(str(error), update_log.text()) from error
    update_log.note(f"release {sha} is healthy")
    prune_releases(ctx.layout, ctx.keep_releases, keep={sha, previous or ""})
    return update_log.text()


def run_repository_command(ctx: UpdateContext, argv: buildspec.Command, *, cwd: Path, env: dict[str, str],
                           timeout: float, log_: commands.CommandLog) -> None:
    """Run a command of the release's ``skynet.yml`` (a hook, the health command) as the build user
    where the instance has one; raise ``commands.CommandFailed`` when it fails.

    The command is the repository's code, not the worker's: as the worker it could read the deploy
    keys and rewrite the releases the ledger verified; as the build user it reads the release and
    the app's config (``config.paths``) and writes neither.
    """
    build_user.run_step(list(argv), cwd=cwd, env=env, timeout=timeout, log=log_, work_root=ctx.layout.build)


def roll_back(ctx: UpdateContext, previous: str | None, update_log: commands.CommandLog) -> None:
    """Return to ``previous`` and restart the app on it, so the instance keeps serving."""
    if previous is None or not (ctx.layout.releases / previous).exists():
        update_log.note("no previous release to return to; stopping the app")
        ctx.layout.current.unlink(missing_ok=True)
        ctx.services.stop()
        return
    switch_current(ctx.layout, previous)
    update_log.note(f"rolled back: current -> releases/{previous}")
    try:
        restart_current(ctx, update_log)
        update_log.note(f"previous release {previous} is healthy again")
    except (buildspec.BuildSpecError, commands.CommandFailed, ServiceError, OSError) as error:
        update_log.note(f"previous release {previous} did not come back healthy: {error}")


def restart_current(ctx: UpdateContext, update_log: commands.CommandLog) -> None:
    """Restart the app on the current release and wait for its health check (it rereads its config)."""
    release = ctx.layout.current_release() or ""
    spec = buildspec.load_buildspec(ctx.layout.current / "skynet.yml")
    env = commands.base_environment({**ctx.env, "SKYNET_RELEASE": release, "PORT": str(ctx.app_port)})
    ctx.services.restart(spec.service.command if spec.service else None, ctx.layout.current, env)
    wait_healthy(ctx, spec, env, update_log)


def wait_healthy(ctx: UpdateContext, spec: buildspec.BuildSpec, env: dict[str, str],
                 update_log: commands.CommandLog) -> None:
    """Wait until the health check passes; raise CommandFailed when its timeout passes first."""
    health = spec.health
    if health is None:
        return
    deadline = time.monotonic() + health.timeout
    last_error = "no check ran"
    while True:
        try:
            if health.http:
                status, _ = http_get(ctx.health_host, ctx.app_port, health.http, timeout=2)
                if not 200 <= status < 300:
                    raise commands.CommandFailed(f"GET {health.http}: HTTP {status}")
            if health.command:
                run_repository_command(ctx, health.command, cwd=ctx.layout.current, env=env,
                                       timeout=max(1.0, deadline - time.monotonic()), log_=update_log)
            update_log.note("health check passed")
            return
        except (OSError, HTTPException, commands.CommandFailed) as error:
            last_error = str(error)
        if time.monotonic() >= deadline:
            update_log.note(f"health check failed: {last_error}")
            raise commands.CommandFailed(f"health check failed after {health.timeout:.0f}s: {last_error}")
        time.sleep(0.2)


def prune_releases(layout: InstanceLayout, keep_count: int, keep: set[str]) -> None:
    """Remove the oldest release folders beyond ``keep_count``, never the current or previous one."""
    if not layout.releases.exists():
        return
    folders = sorted((p for p in layout.releases.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    excess = len(folders) - keep_count
    for folder in folders:
        if excess <= 0:
            break
        if folder.name in keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        excess -= 1


def _progress(ctx: UpdateContext, step: str) -> None:
    if ctx.on_progress is not None:
        try:
            ctx.on_progress(step)
        except Exception:  # noqa: BLE001 - an observer never breaks the update
            log.exception("progress observer failed at %s", step)
