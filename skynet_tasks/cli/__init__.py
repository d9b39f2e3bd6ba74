"""The ``skynet`` command: a thin click layer over the library.

Every option has an environment-variable fallback (``SKYNET_ENV`` and so on)
and is validated before anything is sent. The group builds the process's Settings
first: an unknown ``SKYNET_*`` variable or a bad value stops every command at once.
Exit codes are ``skynet_tasks.cli.exitcodes``'s, the same for every command.
"""

from __future__ import annotations

import click

from skynet_tasks import __version__, logformat
from skynet_tasks.cli.actions import drain_command, rollback_command
from skynet_tasks.cli.agent import agent
from skynet_tasks.cli.config import config
from skynet_tasks.cli.core import bootstrap, deploy, status, worker
from skynet_tasks.cli.demo import demo
from skynet_tasks.cli.dlq import dlq
from skynet_tasks.cli.exitcodes import SkynetGroup
from skynet_tasks.cli.instance import instance
from skynet_tasks.cli.local import local
from skynet_tasks.cli.logs import logs
from skynet_tasks.cli.metrics import metrics
from skynet_tasks.cli.monitor import monitor
from skynet_tasks.cli.options import Startup
from skynet_tasks.cli.queues import queues
from skynet_tasks.cli.rollout import rollout
from skynet_tasks.cli.stack import stack
from skynet_tasks.cli.webhook import webhook

# The role a command's log lines carry; the worker names its own (work or conductor) once it knows it.
ROLES = {"monitor": "dashboard", "webhook": "webhook", "worker": "worker"}


@click.group(cls=SkynetGroup)
@click.version_option(__version__, prog_name="skynet")
@click.option("--log-level", envvar="SKYNET_LOG_LEVEL", default="WARNING", show_default=True,
              type=click.Choice(logformat.LEVELS, case_sensitive=False), help="[SKYNET_LOG_LEVEL]")
@click.option("--log-format", envvar="SKYNET_LOG_FORMAT", default="text", show_default=True,
              type=click.Choice(logformat.FORMATS), help="Log lines as text or JSON objects [SKYNET_LOG_FORMAT].")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str) -> None:
    """Skynet: a self-deploying cluster agent for AWS."""
    logformat.configure(log_level, log_format)
    logformat.bind_process(role=ROLES.get(ctx.invoked_subcommand or "", "cli"))
    ctx.obj = Startup.from_env()


for command in (bootstrap, deploy, status, worker, local, demo, rollout, rollback_command, drain_command, logs,
                webhook, stack, monitor, config, agent, instance, queues, dlq, metrics):
    main.add_command(command)
