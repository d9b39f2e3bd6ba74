"""``skynet agent push``: roll a new version of Skynet itself out, one instance at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from skynet_tasks import names
from skynet_tasks.agent import AgentError, publish_wheel
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.aws import Aws
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.core import wait_for_rollout
from skynet_tasks.cli.exitcodes import worst_outcome
from skynet_tasks.cli.options import env_option, env_resources, json_option, startup
from skynet_tasks.deploys import start_member_rollouts
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Registry
from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.deploy import describe_stack, point_stack_at_wheel, repo_bucket, stack_name_for
from skynet_tasks.stacks.wheel_pin import write_pin
from skynet_tasks.stacks.wheels import WheelRef, upload_wheel
from skynet_tasks.states import RolloutKind

AGENT_UPDATE_TIMEOUT = 300.0


@click.group()
def agent() -> None:
    """Skynet's own version on the instances."""


@agent.command("push")
@env_option
@click.option("--layer", "layers", multiple=True, default=("api",), show_default=True,
              help="Layer whose groups update (repeatable).")
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stack-name", default=None,
              help="Stack whose new instances boot the wheel [default: skynet-<env>, if it exists].")
@click.option("--wait", is_flag=True, help="Wait for the skynet-update rollouts (exit 1 if one halts).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=1800, show_default=True,
              help="With --wait: give up after this many seconds (exit 3).")
@json_option
def push_command(env: str, layers: tuple[str, ...], wheel: Path, stack_name: str | None, wait: bool, timeout: float,
                 as_json: bool) -> None:
    """Upload WHEEL (skynet-<version>-….whl), start a skynet-update rollout per group, and make the env's
    stack boot it on new instances."""
    app = startup().celery()
    from skynet_tasks.messages import Messenger

    aws = Aws()
    settings = startup().settings
    cfn = aws.client("cloudformation")
    name = stack_name or stack_name_for(env)
    try:
        stack = describe_stack(cfn, name)
        if stack is None and stack_name is not None:
            raise StackError(f"no stack {stack_name}")
        # Instances read the wheel from the bucket their stack made, whatever this shell's SKYNET_REPO_BUCKET says.
        bucket = repo_bucket(cfn, name) if stack is not None else env_resources(aws, env).repo_bucket
        manifest = publish_wheel(ArtifactStore(aws.s3, bucket), wheel)
        booted = upload_wheel(aws.s3, bucket, wheel) if stack is not None else None
    except (AgentError, StackError) as error:
        raise exitcodes.Failed(str(error)) from None
    ledger = Ledger(aws.dynamodb, names.state_table(env))
    registry = Registry(aws.dynamodb, names.endpoints_table(env))
    result: dict[str, Any] = {"version": manifest.version, "sha256": manifest.sha256, "rollouts": [],
                              "stack": name if stack is not None else None}
    started = [s for layer in layers
               for s in start_member_rollouts(ledger, registry, Messenger(app, env), env, layer, RolloutKind.AGENT,
                                              manifest.version, AGENT_UPDATE_TIMEOUT, settings.heartbeat_max_age)]
    for rollout in started:
        result["rollouts"].append({"group": rollout.group, "rollout_id": rollout.rollout_id})
        if not as_json:
            click.echo(f"rollout {rollout.rollout_id}: agent {manifest.version} for group {rollout.group}")
    _point_stack(cfn, aws.client("ssm"), name, booted, as_json)
    if wait:
        for entry in result["rollouts"]:
            view = wait_for_rollout(ledger, entry["rollout_id"], timeout, quiet=as_json)
            entry["state"] = view.get("state") if view else None
    click.echo(json.dumps(result, indent=2) if as_json else f"agent {manifest.version} ({manifest.sha256[:12]})")
    if wait:
        exitcodes.exit_with(worst_outcome([r.get("state") for r in result["rollouts"]]))


def _point_stack(cfn: Any, ssm: Any, name: str, booted: WheelRef | None, quiet: bool) -> None:
    """New instances of the stack boot the pushed wheel; without a stack, only running instances update.

    The stack's parameters name the wheel, and its SSM pin (what booting instances read) is set to the
    same value once the update is done.
    """
    if booted is None:
        click.echo(f"no stack {name}: instances that boot later keep their stack's wheel "
                   f"(pass --stack-name if the env's stack has another name)", err=True)
        return
    try:
        changed = point_stack_at_wheel(cfn, name, booted)
        pin = write_pin(cfn, ssm, name, booted)
    except StackError as error:
        raise click.ClickException(f"the rollouts started, but new instances still boot the old wheel: {error}") \
            from None
    if not quiet:
        click.echo(f"stack {name}: new instances boot {booted.key}" + (f" (pinned in {pin})" if pin else "")
                   + ("" if changed else " (already so)"))
