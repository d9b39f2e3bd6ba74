"""The HTTPS webhook target as a receiver sees it: a local HTTPS receiver with a certificate made here
(trusted through the CA bundle the config names; both are ``notifykit``'s) gets each notice signed with
HMAC-SHA256 over the exact body, and nothing when its certificate is not trusted or the secret is missing.

No AWS: the notify task's retries and the conductor's step handing notices off are
``test_notify_handoff.py``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from notifykit import GROUP, NOTICE, SECRET, SHA, notify_config, receiver_fixture, tls_fixture  # noqa: F401 - fixtures

from skynet_tasks.notify.delivery import deliver
from skynet_tasks.notify.transport import NotifyRefused, NotifyRetry
from skynet_tasks.notify.webhook import SIGNATURE_HEADER

pytestmark = pytest.mark.timeout(90)


def test_a_notice_arrives_signed_with_hmac_sha256_over_the_exact_body(receiver, tls, tmp_path):
    config = notify_config(tmp_path / "config", receiver.url, tls[0])

    assert deliver(config, "prod", None, "webhook", NOTICE)

    [(headers, body)] = receiver.requests
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
    assert headers["content-type"] == "application/json" and headers["x-skynet-event"] == "rollout.completed"
    sent = json.loads(body)
    assert sent["event"] == "rollout.completed" and sent["env"] == "prod" and sent["delivery"] == NOTICE.key
    assert sent["rollout"]["rollout_id"] == "r-done" and sent["rollout"]["release"] == SHA
    assert sent["rollout"]["group"] == GROUP and sent["rollout"]["state"] == "completed"


def test_a_receiver_whose_certificate_is_not_trusted_is_not_sent_anything(receiver, tmp_path):
    config = notify_config(tmp_path / "config", receiver.url, None)  # the system's CAs: ours is not among them

    with pytest.raises(NotifyRetry, match="CERTIFICATE_VERIFY_FAILED"):
        deliver(config, "prod", None, "webhook", NOTICE)
    assert receiver.requests == []


def test_a_refusal_is_not_retried_and_a_missing_secret_sends_nothing(receiver, tls, tmp_path):
    config = notify_config(tmp_path / "config", receiver.url, tls[0])
    receiver.status = 401  # the receiver does not accept our signature

    with pytest.raises(NotifyRefused, match="HTTP 401"):
        deliver(config, "prod", None, "webhook", NOTICE)

    (config / "secrets" / "notify-webhook").unlink()
    with pytest.raises(ValueError, match="webhook.secret_file"):
        deliver(config, "prod", None, "webhook", NOTICE)
    assert len(receiver.requests) == 1
