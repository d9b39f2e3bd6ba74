"""``skynet agent push``: roll a new version of Skynet itself out, one instance at a time."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from skynet_tasks import names
from skynet_tasks.agent import AgentError, publish_wheel
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.cli.core import wait_for_rollout
from skynet_tasks.cli.options import env_option, json_option
from skynet_tasks.deploys import start_member_rollouts
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry
from skynet_tasks.settings import Settings
from skynet_tasks.states import RolloutKind, RolloutState

AGENT_UPDATE_TIMEOUT = 300.0


@click.group()
def agent() -> None:
    """Skynet's own version on the instances."""


@agent.command("push")
@env_option
@click.option("--layer", "layers", multiple=True, default=("api",), show_default=True,
              help="Layer whose groups update (repeatable).")
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Wait for the skynet-update rollouts (exit 1 if one halts).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=1800, show_default=True)
@json_option
def push_command(env: str, layers: tuple[str, ...], wheel: Path, wait: bool, timeout: float, as_json: bool) -> None:
    """Upload WHEEL (skynet-<version>-….whl) and start a skynet-update rollout per group of the layers."""
    from skynet_tasks.app import app
    from skynet_tasks.messages import Messenger

    aws = Aws()
    settings = Settings.from_env({**os.environ, "SKYNET_ENV": env})
    try:
        manifest = publish_wheel(ArtifactStore(aws.s3, settings.repo_bucket), wheel)
    except AgentError as error:
        raise click.ClickException(str(error)) from None
    ledger = Ledger(aws.dynamodb, names.state_table(env))
    registry = Registry(aws.dynamodb, names.endpoints_table(env))
    result: dict[str, Any] = {"version": manifest.version, "sha256": manifest.sha256, "rollouts": []}
    for layer in layers:
        for started in start_member_rollouts(ledger, registry, Messenger(app, env), env, layer, RolloutKind.AGENT,
                                             manifest.version, AGENT_UPDATE_TIMEOUT, settings.heartbeat_max_age):
            entry: dict[str, Any] = {"group": started.group, "rollout_id": started.rollout_id}
            if not as_json:
                click.echo(f"rollout {started.rollout_id}: agent {manifest.version} for group {started.group}")
            if wait:
                view = wait_for_rollout(ledger, started.rollout_id, timeout, quiet=as_json)
                entry["state"] = view.get("state") if view else None
            result["rollouts"].append(entry)
    click.echo(json.dumps(result, indent=2) if as_json else f"agent {manifest.version} ({manifest.sha256[:12]})")
    if wait and any(r.get("state") != RolloutState.COMPLETED for r in result["rollouts"]):
        sys.exit(1)
