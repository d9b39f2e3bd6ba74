"""``skynet rollback`` and ``skynet drain``: operator actions on a group or an instance, recorded with who asked."""

from __future__ import annotations

import json

import click

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.completion import complete_groups, complete_instances
from skynet_tasks.cli.options import env_option, json_option, layer_option, startup
from skynet_tasks.cli.rollout import actor, identity
from skynet_tasks.deploys import DeployError
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.operator import NotFound, OperatorError, drain_instance, rollback
from skynet_tasks.registry import Registry


def _instance_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # From the operator's command line: it names a queue, so it is checked as a name part.
    try:
        return names.check_name_part("instance id", value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("rollback")
@env_option
@layer_option
@click.option("--group", default=None, shell_complete=complete_groups,
              help="Maintenance group [default: <env>-<layer>] (SKYNET_GROUP).", envvar="SKYNET_GROUP")
@click.option("--to", "to", default=None, metavar="RELEASE",
              help="A built release of the group (its sha, or a unique prefix) [default: the previous good one].")
@json_option
def rollback_command(env: str, layer: str, group: str | None, to: str | None, as_json: bool) -> None:
    """Roll the group back to its previous good release, or to RELEASE (a new rollout of an already built
    release)."""
    app = startup().celery()

    group = group or names.default_group(env, layer)
    try:
        names.check_name_part("group", group)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--group") from None
    aws = Aws()
    ledger = Ledger(aws.dynamodb, names.state_table(env))
    try:
        started = rollback(ledger, Messenger(app, env), group, actor(), to=to, identity=identity(aws))
    except (NotFound, DeployError) as error:
        raise exitcodes.InputError(str(error)) from None
    except OperatorError as error:
        raise exitcodes.Failed(str(error)) from None
    if as_json:
        click.echo(json.dumps(started.__dict__))
    else:
        click.echo(f"rollout {started.rollout_id}: rolling group {group} back to {started.release}")


@click.command("drain")
@env_option
@click.argument("instance_id", callback=_instance_id, shell_complete=complete_instances)
@click.option("--undo", is_flag=True, help="Put a drained instance back into the proxy.")
@json_option
def drain_command(env: str, instance_id: str, undo: bool, as_json: bool) -> None:
    """Take an instance out of the reverse proxy (it keeps running and updating)."""
    app = startup().celery()

    aws = Aws()
    try:
        record = drain_instance(Ledger(aws.dynamodb, names.state_table(env)),
                                Registry(aws.dynamodb, names.endpoints_table(env)), Messenger(app, env), env,
                                instance_id, actor(), undo=undo, identity=identity(aws))
    except NotFound as error:
        raise exitcodes.InputError(str(error)) from None
    except OperatorError as error:
        raise exitcodes.Failed(str(error)) from None
    if as_json:
        click.echo(json.dumps({"instance": instance_id, **record.__dict__}))
    else:
        click.echo(f"instance {instance_id}: {'back in service' if undo else 'draining'}")
