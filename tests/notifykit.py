"""A local HTTPS receiver for the notify webhook's tests, with a certificate made here (trusted through the
CA bundle the config names), and the config directory that names it as the webhook target.

``tls`` (module scope) and ``receiver`` (one per test) are fixtures: a test module imports
``tls_fixture`` and ``receiver_fixture`` to have them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skynet_tasks.notify.events import Notice, NoticeKind
from skynet_tasks.notify.targets import CONFIG_FILE
from skynet_tasks.states import RolloutKind, RolloutState

GROUP, SECRET = "local-api", b"notify-secret-42"
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


@pytest.fixture(scope="module", name="tls")
def tls_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(name="receiver")
def receiver_fixture(tls) -> Iterator[Receiver]:
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
