"""``skynet instance ...``: setting up the host an instance runs on, and asking an instance to re-register."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from skynet_tasks import names
from skynet_tasks.cli.completion import complete_instances
from skynet_tasks.cli.exitcodes import InputError
from skynet_tasks.cli.options import env_option, env_resources, json_option, startup


@click.group()
def instance() -> None:
    """Set up this host as a Skynet instance; ask an instance to re-register."""


@instance.command("install-units")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help="Where systemd reads unit files.")
@click.option("--root", envvar="SKYNET_ROOT", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/srv/skynet"), show_default=True, help="The instance root (SKYNET_ROOT).")
@click.option("--no-systemctl", is_flag=True, help="Only write the files: no daemon-reload, no enable.")
@json_option
def install_units_command(unit_dir: Path, root: Path, no_systemctl: bool, as_json: bool) -> None:
    """Install skynet-worker.service and skynet-app.service (the app in a unit of its own)."""
    from workers.units import POLKIT_DIR, UnitError, install_units

    try:
        written = install_units(unit_dir, root, sys.executable, systemctl=None if no_systemctl else ("systemctl",),
                                # The rule that lets the worker (user skynet) restart the app, as at boot.
                                polkit_dir=None if no_systemctl else POLKIT_DIR)
    except (UnitError, OSError) as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps({"written": [str(path) for path in written]}))
        return
    for path in written:
        click.echo(str(path))


def _instance_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # From the operator's command line: it becomes part of a queue name, so it is checked as one.
    try:
        return names.check_name_part("instance id", value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@instance.command("re-register")
@env_option
@click.argument("instance_id", callback=_instance_id, shell_complete=complete_instances)
@json_option
def re_register_command(env: str, instance_id: str, as_json: bool) -> None:
    """Have an instance register afresh and heal its group now, as its next heartbeat would."""
    from skynet_tasks.aws import Aws
    from skynet_tasks.messages import RE_REGISTER_TASK, Messenger
    from skynet_tasks.registry import Registry

    aws = Aws()
    # Only a known instance: a message to an unknown id would create a queue that nobody reads.
    if Registry(aws.dynamodb, env_resources(aws, env).endpoints_table).find(env, instance_id) is None:
        raise InputError(f"no instance {instance_id} is registered in env {env}")
    Messenger(startup().celery(), env).to_instance(instance_id, RE_REGISTER_TASK, {"reason": "operator"})
    click.echo(json.dumps({"instance": instance_id, "requested": "re_register"}) if as_json
               else f"instance {instance_id}: re-register requested")
