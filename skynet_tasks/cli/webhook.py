"""``skynet webhook serve``: the GitHub webhook receiver over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from skynet_tasks.cli.extras import require_extra
from skynet_tasks.cli.options import env_option, startup
from skynet_tasks.webhook.receiver import DEFAULT_MAX_BODY
from skynet_tasks.webhook.service import WebhookConfigError, build_receiver, read_secret, secret_from_settings
from skynet_tasks.webhook.wsgi import PATH, make_app

log = logging.getLogger(__name__)


@click.group()
def webhook() -> None:
    """Receive GitHub push webhooks and start builds."""


@webhook.command("serve")
@env_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8088, show_default=True)
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the hook's secret [SKYNET_WEBHOOK_SECRET_FILE].")
@click.option("--routes", "routes", default=None,
              help="Routing table: a JSON file mapping repo + branch to env + layer [SKYNET_WEBHOOK_ROUTES].")
@click.option("--max-body", type=click.IntRange(1024, 25 * 1024 * 1024), default=DEFAULT_MAX_BODY, show_default=True,
              help="Largest body accepted, in bytes.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
def serve(env: str, host: str, port: int, secret_file: Path | None, routes: str | None, max_body: int,
          threads: int) -> None:
    """Serve POST /hooks/github until stopped. Refuses to start without a secret."""
    require_extra("webhook", "skynet webhook serve")
    from skynet_tasks.wsgiserver import serve_wsgi

    start = startup()
    try:
        secret = read_secret(secret_file) if secret_file else secret_from_settings(start.settings)
        routes_source = routes or start.settings.webhook_routes
        if not routes_source:
            raise WebhookConfigError("no routing table (--routes or SKYNET_WEBHOOK_ROUTES)")
        receiver = build_receiver(secret, routes_source, env=env, app=start.celery(), max_body=max_body)
    except WebhookConfigError as error:
        raise click.ClickException(str(error)) from None
    log.info("webhook receiver on http://%s:%d%s for env %s (%d routes)", host, port, PATH, env,
             len(receiver.routes))
    serve_wsgi(make_app(receiver), host, port, threads, "skynet-webhook")
