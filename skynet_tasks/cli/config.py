"""``skynet config``: push a config tree, see the merged view with its sources, see what a push would change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from skynet_tasks.aws import Aws
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.core import wait_for_rollout
from skynet_tasks.cli.exitcodes import worst_outcome
from skynet_tasks.cli.options import env_option, env_resources, json_option, startup
from skynet_tasks.config.merge import merge
from skynet_tasks.config.paths import ConfigError
from skynet_tasks.config.publish import STORES, compare, push, read_tree, start_config_rollouts, stored_level
from skynet_tasks.config.sources import level_for, read_levels
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry


def _level_options(func: Any) -> Any:
    func = click.option("--layer", default=None, help="Push to Layers/<layer>/ (default: Environments/<env>/).")(func)
    func = click.option("--global", "global_", is_flag=True, help="Push to Global/ (every env's instances).")(func)
    return click.option("--store", type=click.Choice(STORES), default="s3", show_default=True,
                        help="Where the level is kept: the config bucket, or the config table (preferred).")(func)


@click.group()
def config() -> None:
    """Layered configuration (Global < Environments/<env> < Layers/<layer>; DynamoDB over S3)."""


@config.command("push")
@env_option
@_level_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-rollout", is_flag=True, help="Only upload; instances pick it up at their next config update.")
@click.option("--wait", is_flag=True, help="Wait for the config-update rollouts (exit 1 if one halts).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=900, show_default=True)
@json_option
def push_command(env: str, layer: str | None, global_: bool, store: str, directory: Path, no_rollout: bool,
                 wait: bool, timeout: float, as_json: bool) -> None:
    """Make one level hold exactly DIRECTORY, then roll the change out as config-update rollouts."""
    app = startup().celery()
    from skynet_tasks.messages import Messenger

    aws = Aws()
    try:
        level = level_for(env, layer, global_)
        tree = read_tree(directory)
        resources = env_resources(aws, env)
        change = push(aws.s3, aws.dynamodb, resources, level, tree, store)
    except (ConfigError, ValueError) as error:
        raise exitcodes.InputError(str(error)) from None
    result: dict[str, Any] = {"level": level.scope, "store": store, **change.to_dict(), "rollouts": []}
    if not as_json:
        click.echo("\n".join(change.lines()))
    if not change.empty and not no_rollout:
        ledger = Ledger(aws.dynamodb, resources.state_table)
        settings = startup().settings
        started = start_config_rollouts(aws, ledger, Registry(aws.dynamodb, resources.endpoints_table),
                                        Messenger(app, env), resources, layer if not global_ else None,
                                        settings.heartbeat_max_age)
        for rollout in started:
            entry: dict[str, Any] = {"group": rollout.group, "version": rollout.version,
                                     "rollout_id": rollout.rollout_id}
            if not as_json:
                click.echo(f"rollout {rollout.rollout_id}: config {rollout.version} for group {rollout.group}")
            if wait:
                view = wait_for_rollout(ledger, rollout.rollout_id, timeout, quiet=as_json)
                entry["state"] = view.get("state") if view else None
                if not as_json:
                    click.echo(f"rollout {rollout.rollout_id}: {entry['state']}")
            result["rollouts"].append(entry)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    if wait:
        exitcodes.exit_with(worst_outcome([r.get("state") for r in result["rollouts"]]))


@config.command("diff")
@env_option
@_level_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def diff_command(env: str, layer: str | None, global_: bool, store: str, directory: Path, as_json: bool) -> None:
    """Show what `config push` of DIRECTORY would change (secrets' contents are never shown)."""
    aws = Aws()
    try:
        level = level_for(env, layer, global_)
        change = compare(stored_level(aws.s3, aws.dynamodb, env_resources(aws, env), level, store),
                         read_tree(directory))
    except (ConfigError, ValueError) as error:
        raise exitcodes.InputError(str(error)) from None
    click.echo(json.dumps({"level": level.scope, "store": store, **change.to_dict()}, indent=2) if as_json
               else "\n".join(change.lines()))


@config.command("show")
@env_option
@click.option("--layer", default="api", show_default=True)
@json_option
def show_command(env: str, layer: str, as_json: bool) -> None:
    """The merged config an instance of ENV/LAYER gets, with the source of every file and JSON key."""
    aws = Aws()
    try:
        merged = merge(read_levels(aws.s3, aws.dynamodb, env_resources(aws, env), layer))
    except (ConfigError, ValueError) as error:
        raise exitcodes.InputError(str(error)) from None
    rows = merged.origins()
    if as_json:
        click.echo(json.dumps({"version": merged.version, "keys": [
            {"file": f, "key": k or None, "source": s} for f, k, s in rows]}, indent=2))
        return
    click.echo(f"config version {merged.version}")
    for file, key, source in rows:
        click.echo(f"{file}{':' + key if key else ''}  <-  {source}")


@config.command("variables")
def variables_command() -> None:
    """Print every SKYNET_* variable Skynet knows (docs/configuration.md's "Every variable" table)."""
    from skynet_tasks.variables import markdown_table

    click.echo(markdown_table(), nl=False)
