"""Wiring the receiver to the real world: secret, routing table, delivery ledger, and ``skynet deploy``'s path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from celery import Celery

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.buildrequest import WEBHOOK_SOURCE
from skynet_tasks.deploys import StartedBuild, group_source, request_build
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import Messenger
from skynet_tasks.settings import Settings
from skynet_tasks.webhook.deliveries import DeliveryLedger
from skynet_tasks.webhook.receiver import DEFAULT_MAX_BODY, Receiver
from skynet_tasks.webhook.routing import Route, RoutingError, load_routes, parse_routes


class WebhookConfigError(Exception):
    """The receiver cannot start: no secret, no routing table."""


def read_secret(path: Path) -> bytes:
    """The webhook secret in the file ``path``: refused if the file is empty or others than its owner may open it."""
    # The dashboard's token file has the same rule and the same check: one reader for both.
    from skynet_tasks.monitor.auth import SecretFileError, read_secret_file

    try:
        secret = read_secret_file(path, "the webhook secret file").strip().encode()
    except SecretFileError as error:
        raise WebhookConfigError(str(error)) from None
    if not secret:
        raise WebhookConfigError(f"the webhook secret file {path} is empty: refusing to accept unsigned hooks")
    return secret


def secret_from_settings(settings: Settings) -> bytes:
    """The secret from SKYNET_WEBHOOK_SECRET_FILE, else SKYNET_WEBHOOK_SECRET; refuses to go without one."""
    if settings.webhook_secret_file:
        return read_secret(Path(settings.webhook_secret_file))
    secret = settings.webhook_secret.encode()
    if not secret:
        raise WebhookConfigError("no webhook secret (SKYNET_WEBHOOK_SECRET_FILE or SKYNET_WEBHOOK_SECRET): "
                                 "refusing to accept unsigned hooks")
    return secret


def secret_from_secrets_manager(secretsmanager: Any, secret_id: str) -> bytes:
    """The webhook secret stored in Secrets Manager under ``secret_id`` (its ARN or name)."""
    try:
        value = secretsmanager.get_secret_value(SecretId=secret_id).get("SecretString") or ""
    except ClientError as error:
        # The error code and the secret's id only: neither is the secret.
        raise WebhookConfigError(f"cannot read the webhook secret {secret_id} from Secrets Manager: "
                                 f"{error.response.get('Error', {}).get('Code', 'error')}") from None
    secret = value.strip().encode()
    if not secret:
        raise WebhookConfigError(f"the webhook secret {secret_id} is empty: refusing to accept unsigned hooks")
    return secret


def routes_from(source: str) -> list[Route]:
    """A routing table from a file path, or inline JSON (Lambda environments)."""
    try:
        if source.lstrip().startswith("{"):
            return parse_routes(json.loads(source))
        return load_routes(Path(source))
    except (RoutingError, json.JSONDecodeError) as error:
        raise WebhookConfigError(str(error)) from None


def build_receiver(secret: bytes, routes_source: str, env: str, app: Celery, max_body: int = DEFAULT_MAX_BODY,
                   aws: Aws | None = None) -> Receiver:
    """A receiver that enqueues builds with ``app`` exactly as ``skynet deploy`` does."""
    aws = aws or Aws()
    ledgers: dict[str, Ledger] = {}
    messengers: dict[str, Messenger] = {}

    def ledger_of(route: Route) -> Ledger:
        return ledgers.setdefault(route.env, Ledger(aws.dynamodb, names.state_table(route.env)))

    def start_build(route: Route, sha: str, forced: bool) -> StartedBuild:
        ledger = ledger_of(route)
        messenger = messengers.setdefault(route.env, Messenger(app, route.env))
        # The group's own registration says where its code lives; the payload's URLs are not used.
        repo, branch = group_source(ledger, route.group)
        return request_build(ledger, messenger, route.group, repo, branch, sha, WEBHOOK_SOURCE, forced=forced,
                             overrides=route.overrides)

    def older(route: Route, sha: str) -> bool:
        # The ledger, not git: the receiver may run where there is no git (Lambda). The builder
        # asks git again before building (``builder.push_refusal``).
        ledger = ledger_of(route)
        desired = ledger.group_info(route.group).get("desired_release")
        return bool(desired) and desired != sha and ledger.built_before(route.group, sha, str(desired))

    deliveries = DeliveryLedger(aws.dynamodb, names.state_table(env))
    return Receiver(secret, routes_from(routes_source), start_build, deliveries, older, max_body)
