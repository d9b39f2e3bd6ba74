"""Skynet's own settings, read once from the environment into a frozen object.

AWS settings (endpoint, region, credentials) are deliberately not here: boto3
and kombu read ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and the credentials
chain themselves. On EC2, ``workers.identity`` fills the instance's identity
from instance metadata and tags before these settings are read.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from skynet_tasks import names


class SettingsError(ValueError):
    """A setting is missing or has a value Skynet cannot use."""


def _number(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{key}={raw!r} is out of range [{low}, {high}]")
    return value


def _address(env: Mapping[str, str]) -> str:
    # It is registered for the proxies to reach and a proxy's nginx listens on it: an IP address only.
    raw = env.get("SKYNET_ADDRESS") or "127.0.0.1"
    try:
        return ipaddress.ip_address(raw).compressed
    except ValueError:
        raise SettingsError(f"SKYNET_ADDRESS={raw!r} is not an IP address") from None


@dataclass(frozen=True)
class Settings:
    """Everything an instance or an operator command needs to know about its place.

    Environment variables (defaults in brackets):
    ``SKYNET_ENV`` [local], ``SKYNET_LAYER`` [api], ``SKYNET_GROUP`` [<env>-<layer>],
    ``SKYNET_INSTANCE_ID`` (required for a worker), ``SKYNET_ROOT`` [/srv/skynet],
    ``SKYNET_CONFIG_DIR`` [/etc/config], ``SKYNET_REPO`` and ``SKYNET_BRANCH`` [main]
    (what the group deploys), ``SKYNET_ADDRESS`` [127.0.0.1] and ``SKYNET_APP_PORT`` [8000]
    (where the app listens, as the proxy reaches it; a proxy's nginx listens there too),
    ``SKYNET_CONFIG_BUCKET``, ``SKYNET_REPO_BUCKET`` [unset: the stack's names, see
    ``skynet_tasks.resources``], ``SKYNET_HEARTBEAT_INTERVAL`` [60 s],
    ``SKYNET_HEARTBEAT_MAX_AGE`` [600 s], ``SKYNET_POLL_WAIT`` [20 s, SQS long polling],
    ``SKYNET_POLL_INTERVAL`` [0 s, pause after an empty poll],
    ``SKYNET_KEEP_RELEASES`` [5]; on the proxy layer, ``SKYNET_RP_POLL`` [30 s, the safety-net
    poll of the endpoints table] and ``SKYNET_WEBHOOK_UPSTREAM`` [none; ip:port of a webhook
    receiver the proxy fronts at /hooks/github].
    """

    env: str = "local"
    layer: str = "api"
    group: str = "local-api"
    instance_id: str = ""
    root: Path = Path("/srv/skynet")
    config_dir: Path = Path("/etc/config")
    repo: str = ""
    branch: str = "main"
    address: str = "127.0.0.1"
    app_port: int = 8000
    # Only what was set explicitly (an instance's user-data sets both); empty means "derive it":
    # read bucket names through skynet_tasks.resources.resolve, never from here.
    config_bucket: str = ""
    repo_bucket: str = ""
    heartbeat_interval: float = 60.0
    heartbeat_max_age: float = 600.0
    poll_wait: int = 20
    poll_interval: float = 0.0
    keep_releases: int = 5
    rp_poll_interval: float = 30.0
    # Longer than a long poll (20 s), far shorter than the instance queue's visibility timeout (900 s).
    build_nudge_after: float = 45.0
    proxy_drain_wait: float = 10.0
    webhook_upstream: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env_vars = os.environ if environ is None else environ
        env = names.check_name_part("env", env_vars.get("SKYNET_ENV") or "local")
        layer = names.check_name_part("layer", env_vars.get("SKYNET_LAYER") or "api")
        group = names.check_name_part("group", env_vars.get("SKYNET_GROUP") or names.default_group(env, layer))
        instance_id = env_vars.get("SKYNET_INSTANCE_ID") or ""
        if instance_id:
            names.check_name_part("instance id", instance_id)
        return cls(
            env=env,
            layer=layer,
            group=group,
            instance_id=instance_id,
            root=Path(env_vars.get("SKYNET_ROOT") or "/srv/skynet"),
            config_dir=Path(env_vars.get("SKYNET_CONFIG_DIR") or "/etc/config"),
            repo=env_vars.get("SKYNET_REPO") or "",
            branch=env_vars.get("SKYNET_BRANCH") or "main",
            address=_address(env_vars),
            app_port=int(_number(env_vars, "SKYNET_APP_PORT", 8000, 1, 65535)),
            config_bucket=env_vars.get("SKYNET_CONFIG_BUCKET") or "",
            repo_bucket=env_vars.get("SKYNET_REPO_BUCKET") or "",
            heartbeat_interval=_number(env_vars, "SKYNET_HEARTBEAT_INTERVAL", 60, 0.5, 3600),
            heartbeat_max_age=_number(env_vars, "SKYNET_HEARTBEAT_MAX_AGE", 600, 1, 86400),
            poll_wait=int(_number(env_vars, "SKYNET_POLL_WAIT", 20, 0, 20)),
            poll_interval=_number(env_vars, "SKYNET_POLL_INTERVAL", 0, 0, 300),
            keep_releases=int(_number(env_vars, "SKYNET_KEEP_RELEASES", 5, 2, 100)),
            rp_poll_interval=_number(env_vars, "SKYNET_RP_POLL", 30, 0.5, 3600),
            build_nudge_after=_number(env_vars, "SKYNET_BUILD_NUDGE_AFTER", 45, 5, 3600),
            proxy_drain_wait=_number(env_vars, "SKYNET_PROXY_DRAIN_WAIT", 10, 0, 300),
            webhook_upstream=env_vars.get("SKYNET_WEBHOOK_UPSTREAM") or "",
        )

    def require_instance(self) -> Settings:
        """Return self, or raise if this process has no instance identity (a worker needs one)."""
        if not self.instance_id:
            raise SettingsError("SKYNET_INSTANCE_ID is not set (on EC2 it comes from instance metadata)")
        return self

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
