"""What the installer needs to put a release on this instance, built from the process's Context."""

from __future__ import annotations

from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateContext


def update_context(ctx: Context, extra_env: dict[str, str]) -> UpdateContext:
    """The installer's view of this instance; ``extra_env`` reaches its lifecycle hooks."""
    s = ctx.settings
    return UpdateContext(
        layout=ctx.layout, store=ctx.store, services=ctx.services(), app_port=s.app_port,
        health_host=s.address, keep_releases=s.keep_releases,
        env={"SKYNET_INSTANCE_ID": s.instance_id, "SKYNET_ENV": s.env, "SKYNET_LAYER": s.layer,
             "SKYNET_ADDRESS": s.address,
             "SKYNET_CONFIG_DIR": str(s.config_dir), "SKYNET_ROOT": str(s.root), **extra_env})
