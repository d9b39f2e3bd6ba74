"""``skynet bootstrap``, ``worker``, ``deploy`` and ``status``."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from skynet_tasks import logformat, names
from skynet_tasks.aws import Aws
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.cli import exitcodes
from skynet_tasks.cli.lookup import RolloutReader
from skynet_tasks.cli.options import (
    env_option,
    env_resources,
    group_option,
    json_option,
    layer_option,
    policy_options,
    startup,
)
from skynet_tasks.cli.rollout import actor, identity
from skynet_tasks.cli.watch import Printer, follow
from skynet_tasks.deadletters import dead_letter_counts
from skynet_tasks.deploys import DeployError, deploy_ref
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.policy_overrides import RolloutOverrides
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry
from skynet_tasks.states import RolloutState
from skynet_tasks.status import collect_status


@click.command()
@env_option
@click.option("--group", "groups", multiple=True, help="A group whose queues to create (repeatable).")
@click.option("--layer", "layers", multiple=True, default=("api",), show_default=True,
              help="Layers whose default groups to create (repeatable).")
@json_option
def bootstrap(env: str, groups: tuple[str, ...], layers: tuple[str, ...], as_json: bool) -> None:
    """Create, idempotently, every queue, table, bucket and topic the env needs."""
    try:
        wanted = sorted({names.check_name_part("group", g) for g in groups}
                        | {names.default_group(env, names.check_name_part("layer", layer)) for layer in layers})
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    aws = Aws()
    report = bootstrap_env(aws, env_resources(aws, env), wanted)
    if as_json:
        click.echo(json.dumps(report.__dict__, indent=2))
    else:
        click.echo(f"env {env}: tables {', '.join(report.tables)}; buckets {', '.join(report.buckets)}; "
                   f"{len(report.queues)} queues; {len(report.topics)} group topics")


@click.command()
@click.option("--log-level", envvar="SKYNET_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(logformat.LEVELS, case_sensitive=False), help="[SKYNET_LOG_LEVEL]")
# The spelling before --log-level. Kept, hidden, because an agent of an older version re-executes
# ``skynet worker --loglevel L`` on the agent it installed (workers.launch.restart_on_installed_agent).
@click.option("--loglevel", "old_log_level", default=None, hidden=True,
              type=click.Choice(logformat.LEVELS, case_sensitive=False))
@click.option("--role", type=click.Choice(["all", "work", "conductor"]), default="all", show_default=True,
              help="all: one worker with the conductor in its main process (the normal way); work or "
                   "conductor: either half alone.")
def worker(log_level: str, old_log_level: str | None, role: str) -> None:
    """Run this instance's Celery workers (identity from SKYNET_* variables or EC2 metadata)."""
    from workers.launch import run_worker

    run_worker((old_log_level or log_level).upper(), role)


@click.command()
@env_option
@layer_option
@group_option
@click.option("--ref", required=True, help="Branch, tag or commit sha to deploy.")
@click.option("--wait", is_flag=True, help="Follow the rollout (progress on stderr) and exit with its outcome: "
                                           "0 completed, 1 halted or failed.")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=1800, show_default=True,
              help="With --wait: give up after this many seconds (exit 3).")
@policy_options
@click.option("--now", is_flag=True, help="Start this rollout outside its maintenance windows (recorded in the "
                                         "group's audit trail with who asked).")
@json_option
def deploy(env: str, layer: str, group: str | None, ref: str, wait: bool, timeout: float, overrides: RolloutOverrides,
           now: bool, as_json: bool) -> None:
    """Build REF once and roll it out to the group, with its skynet.yml's policy or the one given (like a push)."""
    app = startup().celery()

    group = group or names.default_group(env, layer)
    aws = Aws()
    ledger = Ledger(aws.dynamodb, names.state_table(env))
    # Who overrides the windows is known before anything is requested: no override goes unrecorded.
    who = (actor(), identity(aws)) if now else None
    try:
        started = deploy_ref(ledger, Messenger(app, env), group, ref, overrides=overrides, ignore_windows=now)
    except DeployError as error:  # no such group, or a ref its repository does not have
        raise exitcodes.InputError(str(error)) from None
    if who is not None:
        ledger.record_action(group, {"group": group, "rollout_id": started.rollout_id, "action": "deploy --now",
                                     "actor": who[0], "identity": who[1], "at": time.time(),
                                     "release": started.release})
    result: dict[str, Any] = {"group": group, "release": started.release, "rollout_id": started.rollout_id}
    if not as_json:
        click.echo(f"rollout {started.rollout_id}: building {started.release} for group {group}")
    if not wait:
        if as_json:
            click.echo(json.dumps(result, indent=2))
        return
    reader = RolloutReader(ledger, Registry(aws.dynamodb, names.endpoints_table(env)), env)
    printer = Printer(stream=sys.stderr, tty=False if as_json else None)
    code, last = follow(reader, started.rollout_id, printer, timeout)
    result.update(state=last.state, reason=last.reason)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"rollout {started.rollout_id}: {last.state}" + (f" ({last.reason})" if last.reason else ""))
    exitcodes.exit_with(code)


def wait_for_rollout(ledger: Ledger, rollout_id: str, timeout: float, quiet: bool = False) -> dict[str, Any] | None:
    """Poll a rollout until it completes, halts or fails; return its last view (None if it never appeared)."""
    deadline = time.monotonic() + timeout
    seen: dict[int, str] = {}
    view = None
    while time.monotonic() < deadline:
        view = ledger.rollout_view(rollout_id)
        if view is not None:
            if not quiet:
                for ticket in view.get("tickets", []):
                    if seen.get(ticket["number"]) != ticket["state"]:
                        seen[ticket["number"]] = ticket["state"]
                        click.echo(f"  ticket {ticket['number']} {ticket['instance']}: {ticket['state']}", err=True)
            state = RolloutState(view["state"])
            if state.finished or state is RolloutState.HALTED:
                return view
        time.sleep(0.25)
    return view


@click.command()
@env_option
@json_option
@click.option("--rollouts", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Recent rollouts shown per group.")
def status(env: str, as_json: bool, rollouts: int) -> None:
    """Groups, their instances and their recent rollouts."""
    aws = Aws()
    settings = startup().settings
    try:
        dead_letters = dead_letter_counts(Queues(aws.sqs), env)
    except (ClientError, BotoCoreError) as error:  # the rest of the status is still worth showing
        logging.getLogger(__name__).warning("dead-letter queues unreadable: %s", error)
        dead_letters = None
    data = collect_status(Ledger(aws.dynamodb, names.state_table(env)),
                          Registry(aws.dynamodb, names.endpoints_table(env)), env, settings.heartbeat_max_age,
                          rollouts, dead_letters=dead_letters)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for alarm in data["alarms"]:
        click.echo(alarm)
    for group in data["groups"]:
        click.echo(f"group {group['name']}  desired {(group['desired_release'] or '-')[:12]}  "
                   f"repo {group['repo'] or '-'} ({group['branch'] or '-'})")
        for inst in group["instances"]:
            click.echo(f"  {inst['id']:<20} {(inst['release'] or '-')[:12]:<12} {inst['health']:<10} "
                       f"heartbeat {inst['heartbeat_age']:.0f}s ago{' (stale)' if inst['stale'] else ''}")
        for rollout in group["rollouts"]:
            click.echo(f"  rollout {rollout['id']} {rollout['release'][:12]} {rollout['state']}"
                       + (f": {rollout['reason']}" if rollout.get("reason") else ""))
            for ticket in rollout["tickets"]:
                click.echo(f"    #{ticket['number']} {ticket['instance']:<20} {ticket['state']}")
