"""The receiver as an AWS Lambda handler behind a function URL or API Gateway (payload format 1.0 or 2.0).

Configuration from the function's environment: the secret from ``SKYNET_WEBHOOK_SECRET_ARN``
(a Secrets Manager secret, read once per container at cold start: the stack's way), else
``SKYNET_WEBHOOK_SECRET_FILE``, else ``SKYNET_WEBHOOK_SECRET``; ``SKYNET_WEBHOOK_ROUTES`` (a
JSON routing table file packaged with the function, or the JSON itself) and ``SKYNET_ENV``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from skynet_tasks.aws import Aws
from skynet_tasks.webhook.receiver import Receiver, Response, refuse
from skynet_tasks.webhook.service import build_receiver, secret_from_environment, secret_from_secrets_manager

_receiver: Receiver | None = None


def _get_receiver() -> Receiver:
    global _receiver  # one receiver per warm Lambda container, like its boto3 clients
    if _receiver is None:
        aws = Aws()
        arn = os.environ.get("SKYNET_WEBHOOK_SECRET_ARN")
        secret = (secret_from_secrets_manager(aws.client("secretsmanager"), arn) if arn
                  else secret_from_environment(os.environ))
        _receiver = build_receiver(secret, os.environ["SKYNET_WEBHOOK_ROUTES"],
                                   env=os.environ.get("SKYNET_ENV", "local"), aws=aws)
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
    response = respond(event, _get_receiver())
    return {"statusCode": response.status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(response.body)}
