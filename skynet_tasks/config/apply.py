"""An instance applying its configuration: at boot, and as its ticket in a config-update rollout."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from skynet_tasks import buildspec, commands
from skynet_tasks.config.merge import MergedConfig, merge
from skynet_tasks.config.nesting import MAX_NESTING
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.config.snapshot import load_snapshot
from skynet_tasks.config.sources import read_levels
from skynet_tasks.config.sync import ConfigDir
from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateContext, UpdateFailed, restart_current
from skynet_tasks.services import ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Synced:
    """The outcome of a config sync: the version that was active before (None on first sync) and the one active now."""

    previous: str | None
    version: str

    @property
    def changed(self) -> bool:
        """Whether the sync switched to another version."""
        return self.previous != self.version


def merged_config(ctx: Context) -> MergedConfig:
    """This instance's config as its sources hold it now, merged; ConfigError if it cannot be applied."""
    try:
        return merge(read_levels(ctx.aws.s3, ctx.aws.dynamodb, ctx.resources, ctx.settings.layer))
    except RecursionError:
        # The nesting checks stop deep values before anything recursive reads them; this is the
        # backstop for one they missed, so that the instance stays on its last good config.
        raise ConfigError(f"config nested too deep to be read (more than {MAX_NESTING} levels)") from None


def published_config(ctx: Context, version: str) -> MergedConfig:
    """The config ``version`` as a config-update rollout published it, whatever the sources hold now.

    ConfigError if it was not kept (a rollout published by an older Skynet) and the sources no
    longer merge to it: installing what they hold now would install a config nobody tested.
    """
    s = ctx.settings
    published = load_snapshot(ctx.aws.s3, ctx.resources.config_bucket, ctx.resources.env, s.layer, version)
    if published is not None:
        return published
    now = merged_config(ctx)
    if now.version != version:
        raise ConfigError(f"config {version} of this rollout was not kept, and the config is now {now.version}: "
                          "push it again to roll it out")
    return now


def sync_config(ctx: Context, version: str | None = None) -> Synced:
    """Write this instance's config and switch to it: the published ``version``, else the sources merged now.

    ConfigError leaves the old one.
    """
    config = ConfigDir(ctx.settings.config_dir)
    previous = config.current_version()
    version = config.write(published_config(ctx, version) if version else merged_config(ctx))
    config.activate(version)
    config.prune(keep={version, previous or ""})
    if version != previous:
        log.info("config %s -> %s in %s", previous or "none", version, config.path)
    return Synced(previous, version)


def apply_config_update(ctx: Context, update_ctx: UpdateContext, version: str | None = None) -> str:
    """A config-update ticket: install the rollout's ``version``, restart the app on it, health-check;
    on failure return to the old config.

    Raises UpdateFailed (after returning to the previous config, app restarted on it) if
    the new config cannot be read, written, or makes the app fail its health check.
    """
    update_log = commands.CommandLog()
    config = ConfigDir(ctx.settings.config_dir)
    try:
        synced = sync_config(ctx, version)
    except ConfigError as error:
        update_log.note(f"config refused, nothing changed: {error}")
        raise UpdateFailed(f"config refused: {error}", update_log.text()) from error
    update_log.note(f"config {synced.previous or 'none'} -> {synced.version}")
    if ctx.layout.current_release() is None:
        update_log.note("no release installed: nothing to restart")
        return update_log.text()
    try:
        restart_current(update_ctx, update_log)
    except (buildspec.BuildSpecError, commands.CommandFailed, ServiceError, OSError) as error:
        update_log.note(f"the app failed on config {synced.version}: {error}")
        if synced.previous is not None and synced.changed:
            config.activate(synced.previous)
            update_log.note(f"returned to config {synced.previous}")
            try:
                restart_current(update_ctx, update_log)
                update_log.note("the app is healthy again on the previous config")
            except (buildspec.BuildSpecError, commands.CommandFailed, ServiceError, OSError) as again:
                update_log.note(f"the app did not come back healthy on the previous config: {again}")
        raise UpdateFailed(f"config {synced.version}: {error}", update_log.text()) from error
    update_log.note(f"config {synced.version} is live and the app is healthy")
    return update_log.text()
