"""``skynet rollout``: follow a rollout (status, list, history, show) and steer it (pause, resume, abort, retry,
promote)."""

from __future__ import annotations

import getpass
import json
import time
from typing import Any

import click
from botocore.exceptions import ClientError

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.caller import caller_arn
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.completion import complete_groups, complete_rollouts
from skynet_tasks.cli.lookup import RolloutReader
from skynet_tasks.cli.options import env_option, json_option, layer_option, startup
from skynet_tasks.cli.watch import Printer, follow
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.operator import NotFound, OperatorError, rollout_action
from skynet_tasks.registry import Registry


def actor() -> str:
    """Who the audit trail says asked: ``cli:<login>`` (the login as this machine knows it; see ``identity``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def identity(aws: Aws) -> str:
    """The AWS identity (an ARN) that the audit trail records beside ``actor``; Failed if STS will not say.

    An action is not taken without it: the login is the caller's to choose, the ARN is not.
    """
    try:
        return caller_arn(aws)
    except ClientError as error:
        raise exitcodes.Failed(f"cannot tell who you are for the audit trail (STS GetCallerIdentity): "
                               f"{error}") from None


def reader_for(env: str) -> RolloutReader:
    """A RolloutReader of ``env``'s ledger and registry."""
    aws = Aws()
    return RolloutReader(Ledger(aws.dynamodb, names.state_table(env)),
                         Registry(aws.dynamodb, names.endpoints_table(env)), env)


def rollout_argument(func: Any) -> Any:
    """The ROLLOUT_ID argument, completed from the env's recent rollouts."""
    return click.argument("rollout_id", shell_complete=complete_rollouts)(func)


def group_choice(func: Any) -> Any:
    """``--group G``, completed from the env's groups (checked as a name when used)."""
    return click.option("--group", default=None, shell_complete=complete_groups,
                        help="A maintenance group [list: default <env>-<layer>].")(func)


@click.group()
def rollout() -> None:
    """Follow a rollout (status, list, show) and steer it (pause, resume, abort, retry, promote)."""


def _action_command(action: str, help_text: str) -> click.Command:
    @click.command(name=action, help=help_text)
    @env_option
    @rollout_argument
    @json_option
    def command(env: str, rollout_id: str, as_json: bool) -> None:
        app = startup().celery()

        aws = Aws()
        ledger = Ledger(aws.dynamodb, names.state_table(env))
        try:
            record = rollout_action(ledger, Messenger(app, env), rollout_id, action, actor(), identity(aws))
        except NotFound as error:
            raise exitcodes.InputError(str(error)) from None
        except OperatorError as error:
            raise exitcodes.Failed(str(error)) from None
        click.echo(json.dumps(record.__dict__) if as_json else
                   f"rollout {rollout_id}: {action} requested for group {record.group}")
    return command


for _name, _help in (("pause", "Dispatch no further tickets until resumed."),
                     ("resume", "Resume a paused or halted rollout; cancelled tickets get their place back."),
                     ("abort", "End the rollout; an update in flight finishes, nothing more is dispatched."),
                     ("retry", "Give the failed ticket another attempt, then resume."),
                     ("promote", "Publish a rollout waiting for promotion (canary: manual) after its canary's "
                                 "success: the rest of the group rolls out. Refused (exit 1) if it is not waiting.")):
    rollout.add_command(_action_command(_name, _help))


@rollout.command("status")
@env_option
@click.argument("rollout_id", required=False, shell_complete=complete_rollouts)
@group_choice
@click.option("--watch", "-w", is_flag=True, help="Follow it until it completes, halts or ends.")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=1800, show_default=True,
              help="With --watch: stop after this many seconds (exit 3).")
@json_option
def status_command(env: str, rollout_id: str | None, group: str | None, watch: bool, timeout: float,
                   as_json: bool) -> None:
    """A rollout's progress: tickets done out of expected, the one updating, the build's phase, elapsed time.

    Exit code: 0 completed (or still in progress, without --watch), 1 halted or ended without completing
    (or deleted while watched), 3 --timeout passed, 4 no such rollout or group.
    """
    if (rollout_id is None) == (group is None):
        raise click.UsageError("give either a ROLLOUT_ID or --group")
    reader = reader_for(env)
    rollout_id = rollout_id or reader.latest(str(group))
    code, _ = follow(reader, rollout_id, Printer(as_json=as_json), timeout, watch=watch)
    exitcodes.exit_with(code)


def _duration(summary: dict[str, Any]) -> str:
    start, end = summary.get("created_at"), summary.get("finished_at")
    return f"{float(end) - float(start):.1f} s" if start and end else "-"


def _when(at: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(at))) if at else "-"


@rollout.command("list")
@env_option
@layer_option
@group_choice
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True, help="Rollouts shown.")
@json_option
def list_command(env: str, layer: str, group: str | None, limit: int, as_json: bool) -> None:
    """The group's latest rollouts, newest first: release, kind, state, tickets done, when, how long."""
    group = group or names.default_group(env, layer)
    rollouts = reader_for(env).history(group, limit)
    if as_json:
        click.echo(json.dumps({"group": group, "rollouts": rollouts}, indent=2))
        return
    click.echo(f"{'ROLLOUT':<26} {'RELEASE':<12} {'KIND':<13} {'STATE':<12} {'TICKETS':<8} {'CREATED (UTC)':<19} "
               f"DURATION")
    for entry in rollouts:
        tickets = f"{sum(t['state'] == 'done' for t in entry['tickets'])}/{len(entry['tickets'])}"
        click.echo(f"{entry['id']:<26} {entry['release'][:12]:<12} {entry['kind'] or 'code':<13} "
                   f"{entry['state']:<12} {tickets:<8} {_when(entry['created_at']):<19} "
                   f"{_duration(entry)}" + _revert_note(entry))


def _revert_note(entry: dict[str, Any]) -> str:
    """What a list row adds for an automatic revert: which rollout it reverts, or which revert reverted it."""
    if entry.get("revert_of"):
        return f"  revert of {entry['revert_of']}"
    return f"  reverted by {entry['reverted_by']}" if entry.get("reverted_by") else ""


rollout.add_command(list_command, "history")


@rollout.command("show")
@env_option
@rollout_argument
@json_option
def show_command(env: str, rollout_id: str, as_json: bool) -> None:
    """One rollout: its release, source, outcome and times, and every ticket with its instance and times."""
    summary = reader_for(env).require(rollout_id)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"rollout {summary['id']}  group {summary['group']}  {summary['kind'] or 'code'} "
               f"{summary['release']}")
    click.echo(f"  state {summary['state']}" + (f": {summary['reason']}" if summary.get("reason") else ""))
    click.echo(f"  created {_when(summary['created_at'])}  finished {_when(summary['finished_at'])}  "
               f"took {_duration(summary)}")
    for label in ("source", "canary", "builder", "author", "message", "superseded_by", "revert_of", "reverted_by"):
        if summary.get(label):
            click.echo(f"  {label} {summary[label]}")
    click.echo(f"  {'#':>3} {'INSTANCE':<20} {'STATE':<10} {'STARTED (UTC)':<19} {'TOOK':<9} ERROR")
    for ticket in summary["tickets"]:
        took = (f"{float(ticket['finished_at']) - float(ticket['started_at']):.1f} s"
                if ticket.get("started_at") and ticket.get("finished_at") else "-")
        click.echo(f"  {ticket['number']:>3} {ticket['instance']:<20} {ticket['state']:<10} "
                   f"{_when(ticket['started_at']):<19} {took:<9} {ticket.get('error') or ''}")
