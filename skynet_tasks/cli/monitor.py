"""``skynet monitor serve``: the dashboard, its JSON API and /metrics over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from skynet_tasks.cli.extras import require_extra
from skynet_tasks.cli.options import env_option, env_resources, startup
from skynet_tasks.cli.tokens import token
from skynet_tasks.monitor.auth import Auth, AuthConfigError, check_bind, is_loopback

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@click.group()
def monitor() -> None:
    """The web dashboard: groups, instances, rollouts, releases, queues, task runs; operator actions."""


@monitor.command("serve")
@env_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8089, show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), envvar="SKYNET_DASHBOARD_TOKEN_FILE",
              default=None, help="File of named tokens: NAME TOKEN [read] lines, or one token alone (mode 0600; "
                                 "`skynet monitor token add`; re-read when it changes) [SKYNET_DASHBOARD_TOKEN_FILE]. "
                                 "Required to bind a non-loopback address.")
@click.option("--reads", type=click.Choice(["open", "token"]), envvar="SKYNET_DASHBOARD_READS", default="open",
              show_default=True, help="Who may read pages, the API and /metrics: anyone who reaches the server, or "
                                      "only with a token (the write token or the read-only one) "
                                      "[SKYNET_DASHBOARD_READS].")
@click.option("--read-token-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="SKYNET_DASHBOARD_READ_TOKEN_FILE", default=None,
              help="File holding a token that may read but never act (mode 0600; needs --reads token) "
                   "[SKYNET_DASHBOARD_READ_TOKEN_FILE].")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
def serve(env: str, host: str, port: int, token_file: Path | None, reads: str, read_token_file: Path | None,
          threads: int) -> None:
    """Serve the dashboard until stopped."""
    require_extra("dashboard", "skynet monitor serve")
    from skynet_tasks.aws import Aws
    from skynet_tasks.monitor.app import create_app
    from skynet_tasks.wsgiserver import serve_wsgi

    try:
        auth = Auth.from_files(token_file, read_token_file, protect_reads=reads == "token")
        check_bind(host, auth)
    except AuthConfigError as error:
        raise click.ClickException(str(error)) from None
    start = startup()
    aws = Aws()
    application = create_app(env_resources(aws, env), aws, start.celery(), auth, start.settings.heartbeat_max_age,
                             allowed_hosts=LOOPBACK_NAMES if is_loopback(host) else None,
                             long_polls=threads // 2)  # the other half of the threads stay for pages and actions
    log.info("dashboard of env %s on http://%s:%d/ (actions %s; reads %s)", env, host, port,
             "enabled" if auth.can_act else "disabled: no --token-file",
             "need a token" if auth.protect_reads else "open")
    click.echo(f"Skynet dashboard of env {env}: http://{host}:{port}/", err=True)
    serve_wsgi(application, host, port, threads, "skynet-dashboard")


monitor.add_command(token)
