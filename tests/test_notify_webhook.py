"""The HTTPS webhook target, against a local HTTPS receiver with a certificate made here (trusted through the
CA bundle the config names), and the conductor's step handing notices off while the receiver is down.

AWS is a moto server (the step's ledger, the instance's own queue the notices go to, the task runs'
table), as in production code paths.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from clusterkit import sender_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ledgerkit import bootstrapped_moto

from skynet_tasks import names
from skynet_tasks.app import app, configure
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.notify.delivery import deliver
from skynet_tasks.notify.events import Notice, NoticeKind
from skynet_tasks.notify.handoff import NOTIFY_TASK
from skynet_tasks.notify.targets import CONFIG_FILE
from skynet_tasks.notify.transport import NotifyRefused, NotifyRetry
from skynet_tasks.notify.webhook import DELIVERY_HEADER, SIGNATURE_HEADER
from skynet_tasks.registry import Endpoint
from skynet_tasks.settings import Settings
from skynet_tasks.states import RolloutKind, RolloutState
from skynet_tasks.step import decide_and_write_until_settled
from skynet_tasks.tasks import notify  # noqa: F401 - registers the task
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.tasks.maintenance import handle_maintenance

pytestmark = pytest.mark.timeout(90)

GROUP, ME, SECRET = "local-api", "api-1", b"notify-secret-42"
SHA = "7" * 40
NOTICE = Notice(NoticeKind.COMPLETED, "r-done", GROUP, SHA, RolloutKind.CODE, RolloutState.COMPLETED, 1700000000.0)


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (the CA bundle, the server's certificate, its key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Receiver:
    """A local HTTPS receiver: records each request, answers 503 to the first ``failures`` of them, then
    ``status`` (204: accepted)."""

    def __init__(self, certificate: Path, key: Path) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failures, self.status = 0, 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = receiver.failures > 0
                receiver.failures -= failing
                self.send_response(503 if failing else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hooks/skynet"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def receiver(tls) -> Iterator[Receiver]:
    found = Receiver(tls[1], tls[2])
    yield found
    found.stop()


def notify_config(config_dir: Path, url: str, ca_bundle: Path | None, github: str | None = None) -> Path:
    """A config directory whose skynet-notify.json names one webhook (and GitHub's API at ``github``), with
    their secrets beside it."""
    (config_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (config_dir / "secrets" / "notify-webhook").write_bytes(SECRET + b"\n")
    (config_dir / "secrets" / "github-token").write_text("ghp_test")
    webhook: dict[str, Any] = {"url": url, **({"ca_bundle": str(ca_bundle)} if ca_bundle else {})}
    targets = {"webhook": webhook, **({"github": {"repo": "acme/shop", "api_url": github}} if github else {})}
    (config_dir / CONFIG_FILE).write_text(json.dumps(targets))
    return config_dir


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hanging() -> Iterator[str]:
    """The URL of a receiver that takes connections and never answers (a sender waits for its timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/hooks/skynet"


# ---- the webhook as a receiver sees it -----------------------------------------------------------------------
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


# ---- the task: retried with backoff, in the worker ---------------------------------------------------------
@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, Any]]:
    with bootstrapped_moto([GROUP]) as started:
        yield started


@pytest.fixture
def ctx(moto, tmp_path) -> Iterator[Context]:
    server, aws = moto
    settings = Settings.from_env({"SKYNET_ENV": "local", "SKYNET_INSTANCE_ID": ME,
                                  "SKYNET_ROOT": str(tmp_path / "root"),
                                  "SKYNET_CONFIG_DIR": str(tmp_path / "config")})
    found = Context.create(settings, sender_for({**server.environment(), "SKYNET_ENV": "local"}).app, aws)
    configure(app, settings)  # as the worker does at its start: the tasks' own app
    SkynetTask.adopt(found)
    yield found
    SkynetTask.adopt(None)  # type: ignore[arg-type]


def test_the_task_retries_with_growing_backoff_until_the_receiver_accepts(ctx, receiver, tls, monkeypatch):
    notify_config(ctx.settings.config_dir, receiver.url, tls[0])
    receiver.failures = 2
    countdowns: list[float] = []
    task = app.tasks[NOTIFY_TASK]
    retry = task.retry

    def recording_retry(*args: Any, **kwargs: Any) -> Any:
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(task, "retry", recording_retry)

    result = task.apply(kwargs={"target": "webhook", "notice": NOTICE.to_message()})

    assert result.successful() and result.result is True
    assert len(receiver.requests) == 3  # failed twice, then accepted
    assert len({body for _, body in receiver.requests}) == 1  # every attempt the same body ...
    assert len({headers[DELIVERY_HEADER.lower()] for headers, _ in receiver.requests}) == 1  # ... and delivery id
    # Celery's exponential backoff (jittered: anywhere up to 2 s, then up to 4 s), never past its maximum.
    assert len(countdowns) == 2 and 0 <= countdowns[0] <= 2 and 0 <= countdowns[1] <= 4


def instance_queue_tasks(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """The (task, kwargs) of every message waiting on this instance's own queue (received, then left to return)."""
    sqs = ctx.aws.sqs
    url = sqs.get_queue_url(QueueName=names.instance_queue("local", ME))["QueueUrl"]
    found: list[tuple[str, dict[str, Any]]] = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       VisibilityTimeout=60).get("Messages", [])
        if not messages and found:
            break
        for message in messages:
            envelope = json.loads(base64.b64decode(message["Body"]))
            _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            found.append((envelope["headers"]["task"], kwargs))
    return found


def test_a_step_hands_its_notices_to_its_own_queue_and_a_receiver_down_changes_nothing(ctx, hanging):
    # Given a webhook and a GitHub API that never answer (a step that waited would wait 5 s per notice and target)
    notify_config(ctx.settings.config_dir, hanging, None, github=hanging)
    for member in ("a", ME):
        ctx.registry.register("local", "api", Endpoint(member, GROUP, "10.0.0.1", 8080, "old", "healthy", time.time()))
    ctx.ledger.create_rollout("r-down", GROUP, SHA, RolloutKind.CODE, {})

    # When the rollout runs its canary (ME) and the other member to the end
    started = time.monotonic()
    for event in (RolloutReady(Rollout(id="r-down", group=GROUP, release=SHA, canary=ME, update_timeout=60)),
                  TicketTaken("r-down", "a"), UpdateReported("r-down", 1, ME, ok=True),
                  UpdateReported("r-down", 2, "a", ok=True)):
        handle_maintenance(ctx, GROUP, to_message(event)[0])
    elapsed = time.monotonic() - started

    # Then every decision is written, as fast as steps go (nothing waited on the receiver) ...
    rollout = ctx.ledger.load_rollout("r-down")
    assert rollout is not None and rollout.state is RolloutState.COMPLETED
    assert elapsed < 15, f"four steps took {elapsed:.1f} s"  # six sends in place would take 30 s
    # ... and the notices wait on the instance's own queue, for its worker's pool, in order
    told = [(kw["target"], kw["notice"]["kind"]) for task, kw in instance_queue_tasks(ctx) if task == NOTIFY_TASK]
    assert told == [(target, kind) for kind in ("started", "published", "completed")
                    for target in ("webhook", "github")]
    # A notice whose receiver is down is retried later: the rollout is not touched
    notify_config(ctx.settings.config_dir, f"https://127.0.0.1:{closed_port()}/hooks/skynet", None)
    with pytest.raises(NotifyRetry, match="Connection refused"):
        deliver(ctx.settings.config_dir, "local", ctx.aws, "webhook", NOTICE)
    assert ctx.ledger.load_rollout("r-down") == rollout


def test_a_broken_notification_config_never_fails_a_step(ctx, caplog):
    ctx.settings.config_dir.mkdir(parents=True, exist_ok=True)
    (ctx.settings.config_dir / CONFIG_FILE).write_text('{"webhook": {"url": "http://example.com/"}}')  # not https
    ctx.ledger.create_rollout("r-bad", GROUP, SHA, RolloutKind.CODE, {})

    decision = handle_maintenance(ctx, GROUP, to_message(RolloutReady(Rollout(
        id="r-bad", group=GROUP, release=SHA, canary=None, update_timeout=60)))[0])

    assert decision is not None and decision.changed
    assert ctx.ledger.load_rollout("r-bad").state is RolloutState.RUNNING  # type: ignore[union-attr]
    assert "notices not handed off" in caplog.text and "plain http" in caplog.text


def test_an_observer_of_the_step_that_fails_never_undoes_the_decision_and_a_redelivery_tells_nothing(ctx):
    ctx.ledger.create_rollout("r-obs", GROUP, SHA, RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-obs", group=GROUP, release=SHA, canary=None, update_timeout=60))
    seen: list[str] = []

    def failing(before: Any, decision: Any) -> None:
        seen.append("told")
        raise RuntimeError("notifier exploded")

    decision = decide_and_write_until_settled(ctx.ledger, GROUP, ready, (ME,), after_write=failing)
    again = decide_and_write_until_settled(ctx.ledger, GROUP, ready, (ME,), after_write=failing)

    assert decision.changed and not again.changed and seen == ["told"]  # told once, for the write only
    assert ctx.ledger.load_rollout("r-obs").state is RolloutState.RUNNING  # type: ignore[union-attr]
