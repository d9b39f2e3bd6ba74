"""The generic HTTPS webhook: each notice POSTed as JSON, signed with HMAC-SHA256 as GitHub signs its own.

A receiver checks ``X-Skynet-Signature-256: sha256=<hex>`` (the HMAC of the exact body with the shared
secret, compared in constant time) and may deduplicate on ``X-Skynet-Delivery``: a retried or
redelivered notice carries the same id and the same body.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from skynet_tasks.notify.events import Notice
from skynet_tasks.notify.targets import WebhookTarget, read_secret
from skynet_tasks.notify.transport import send

SIGNATURE_HEADER = "X-Skynet-Signature-256"
EVENT_HEADER = "X-Skynet-Event"
DELIVERY_HEADER = "X-Skynet-Delivery"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def body_of(env: str, notice: Notice) -> bytes:
    """The JSON body a notice is posted as (the same bytes every time it is sent)."""
    return json.dumps({"event": f"rollout.{notice.kind}", "delivery": notice.key, "env": env,
                       "rollout": notice.to_message()}, sort_keys=True, separators=(",", ":")).encode()


def post_notice(target: WebhookTarget, env: str, notice: Notice) -> None:
    """POST ``notice`` to the target's URL, signed; NotifyRetry or NotifyRefused if it was not accepted."""
    body = body_of(env, notice)
    secret = read_secret(target.secret_file, "webhook.secret_file")
    send("POST", target.url, body, {
        "Content-Type": "application/json", "User-Agent": "Skynet-Notify",
        EVENT_HEADER: f"rollout.{notice.kind}", DELIVERY_HEADER: notice.key, SIGNATURE_HEADER: sign(secret, body),
    }, target.ca_bundle)
