"""``skynet rollout pause|resume|abort|retry``, ``skynet rollback``, ``skynet drain`` and ``skynet logs``."""

from __future__ import annotations

import getpass
import json

import click

from skynet_tasks import names
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.cli.options import env_option, env_resources, group_option, json_option, layer_option, startup
from skynet_tasks.deploys import DeployError
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.operator import OperatorError, drain_instance, rollback, rollout_action
from skynet_tasks.registry import Registry


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@click.group()
def rollout() -> None:
    """Steer a rollout: pause, resume, abort, retry its failed ticket."""


def _action_command(action: str, help_text: str) -> click.Command:
    @click.command(name=action, help=help_text)
    @env_option
    @click.argument("rollout_id")
    def command(env: str, rollout_id: str) -> None:
        app = startup().celery()

        ledger = Ledger(Aws().dynamodb, names.state_table(env))
        try:
            record = rollout_action(ledger, Messenger(app, env), rollout_id, action, _actor())
        except OperatorError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"rollout {rollout_id}: {action} requested for group {record.group}")
    return command


for _name, _help in (("pause", "Dispatch no further tickets until resumed."),
                     ("resume", "Resume a paused or halted rollout; cancelled tickets get their place back."),
                     ("abort", "End the rollout; an update in flight finishes, nothing more is dispatched."),
                     ("retry", "Give the failed ticket another attempt, then resume.")):
    rollout.add_command(_action_command(_name, _help))


@click.command("rollback")
@env_option
@layer_option
@group_option
@json_option
def rollback_command(env: str, layer: str, group: str | None, as_json: bool) -> None:
    """Roll the group back to its previous good release (a new rollout of an already built release)."""
    app = startup().celery()

    group = group or names.default_group(env, layer)
    ledger = Ledger(Aws().dynamodb, names.state_table(env))
    try:
        started = rollback(ledger, Messenger(app, env), group, _actor())
    except (OperatorError, DeployError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(started.__dict__))
    else:
        click.echo(f"rollout {started.rollout_id}: rolling group {group} back to {started.release}")


@click.command("drain")
@env_option
@click.argument("instance_id")
@click.option("--undo", is_flag=True, help="Put a drained instance back into the proxy.")
def drain_command(env: str, instance_id: str, undo: bool) -> None:
    """Take an instance out of the reverse proxy (it keeps running and updating)."""
    app = startup().celery()

    aws = Aws()
    try:
        drain_instance(Ledger(aws.dynamodb, names.state_table(env)), Registry(aws.dynamodb, names.endpoints_table(env)),
                       Messenger(app, env), env, instance_id, _actor(), undo=undo)
    except OperatorError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"instance {instance_id}: {'back in service' if undo else 'draining'}")


@click.command("logs")
@env_option
@click.argument("rollout_id")
@click.option("--ticket", type=int, default=None, help="Only this ticket's update log.")
def logs(env: str, rollout_id: str, ticket: int | None) -> None:
    """Print a rollout's build log and its tickets' update logs."""
    aws = Aws()
    resources = env_resources(aws, env)  # env's own bucket, whatever SKYNET_ENV says
    view = Ledger(aws.dynamodb, resources.state_table).rollout_view(rollout_id)
    if view is None:
        raise click.ClickException(f"no rollout {rollout_id}")
    store = ArtifactStore(aws.s3, resources.repo_bucket)
    keys = [] if ticket else [("build", view.get("build_log_key"))]
    keys += [(f"ticket {t['number']} ({t['instance']})", t.get("log_key")) for t in view["tickets"]
             if ticket is None or t["number"] == ticket]
    for title, key in keys:
        click.echo(f"==> {title}: {key or 'no log'}")
        if key:
            click.echo(store.get_text(key))
