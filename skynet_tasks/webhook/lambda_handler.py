"""The receiver as an AWS Lambda handler behind a function URL or API Gateway (payload format 1.0 or 2.0).

Configuration from the function's environment: the secret from ``SKYNET_WEBHOOK_SECRET_ARN``
(a Secrets Manager secret, read once per container at cold start: the stack's way), else
``SKYNET_WEBHOOK_SECRET_FILE``, else ``SKYNET_WEBHOOK_SECRET``; ``SKYNET_WEBHOOK_ROUTES`` (a
JSON routing table file packaged with the function, or the JSON itself) and ``SKYNET_ENV``, read
once into ``Settings``. A container whose environment Skynet refuses (an unknown ``SKYNET_*``
name, a bad value, no routing table) answers 500 and logs why, every time, sending nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from skynet_tasks.app import create_app
from skynet_tasks.aws import Aws
from skynet_tasks.settings import Settings, SettingsError
from skynet_tasks.webhook.receiver import Receiver, Response, refuse
from skynet_tasks.webhook.service import build_receiver, secret_from_secrets_manager, secret_from_settings

log = logging.getLogger(__name__)

_receiver: Receiver | None = None


def _get_receiver() -> Receiver:
    global _receiver  # one receiver per warm Lambda container, like its boto3 clients
    if _receiver is None:
        settings = Settings.from_env()  # first: a refused environment contacts nothing
        if not settings.webhook_routes:
            raise SettingsError("SKYNET_WEBHOOK_ROUTES is not set: no routing table")
        aws = Aws()
        arn = settings.webhook_secret_arn
        secret = (secret_from_secrets_manager(aws.client("secretsmanager"), arn) if arn
                  else secret_from_settings(settings))
        _receiver = build_receiver(secret, settings.webhook_routes, env=settings.env, app=create_app(settings),
                                   aws=aws)
    return _receiver


def respond(event: dict[str, Any], receiver: Receiver) -> Response:
    """The receiver's answer to one proxy event (its headers and raw, possibly base64, body)."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    if len(raw) > receiver.max_body * 4 // 3 + 4:
        return refuse(413, f"body over the limit of {receiver.max_body} bytes")
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
    except (binascii.Error, ValueError):
        return refuse(400, "body is not valid base64")
    return receiver.handle(headers, body)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point: one webhook request in, its HTTP answer out."""
    try:
        receiver = _get_receiver()
    except SettingsError as error:  # a secret it cannot read still fails the invocation, as before
        log.error("webhook receiver not started: %s", error)  # the operator reads why in the function's log
        response = refuse(500, "the webhook receiver is misconfigured: see its log")
    else:
        response = respond(event, receiver)
    return {"statusCode": response.status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(response.body)}
