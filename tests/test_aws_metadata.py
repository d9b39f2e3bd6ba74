"""An instance's role credentials from a metadata service that answers late or not yet (``skynet_tasks.aws``).

The metadata service is the local cluster's stand-in (``skynet_tasks.local.imds``), served on this machine;
the role's credentials are fixed, so no AWS is needed. The stack-built cluster boots every instance of
``tests/test_stack_cluster.py`` behind a late metadata service too.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import NoCredentialsError

from skynet_tasks.aws import new_session, wait_longer_for_instance_metadata
from skynet_tasks.local.imds import InstanceMetadata, handler_for

pytestmark = pytest.mark.timeout(60)

KEY = "ASIAROLECREDENTIALS1"


def metadata(credentials_delay: float) -> InstanceMetadata:
    found = InstanceMetadata(instance_id="i-0metadata", local_ipv4="10.0.0.5", region="us-east-1",
                             availability_zone="us-east-1a", tags={}, user_data="",
                             role_arn="arn:aws:iam::123456789012:role/skynet-local-api", endpoint_url="http://unused",
                             service_key_id="unused", service_secret="unused", credentials_delay=credentials_delay)
    # Assumed already: the stand-in answers these until they near their expiry.
    found._credentials = {"AccessKeyId": KEY, "SecretAccessKey": "secret", "SessionToken": "token",
                          "Expiration": datetime.now(UTC) + timedelta(hours=1)}
    return found


@contextmanager
def metadata_service(port: int, credentials_delay: float = 0.0) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(metadata(credentials_delay)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """A free port, where botocore looks for the metadata service; no other source of credentials."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_METADATA_SERVICE_TIMEOUT", "AWS_METADATA_SERVICE_NUM_ATTEMPTS", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{free}/")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return free


def test_botocore_alone_gives_up_on_a_late_answer_and_its_client_never_signs(port):
    # Given a metadata service answering the role's credentials 1.5 s late (botocore waits 1 s, once)
    with metadata_service(port, credentials_delay=1.5):
        session = boto3.session.Session()
        client = session.client("sqs", endpoint_url="http://127.0.0.1:9")

    # Then the client was made without credentials, and keeps none once the service answers at once
    with metadata_service(port):
        with pytest.raises(NoCredentialsError):
            client.list_queues()


def test_an_instances_agent_waits_for_a_late_answer(port, monkeypatch):
    # Given what workers.identity adds to the agent's environment once the metadata service named the instance
    waits: dict[str, str] = {}
    wait_longer_for_instance_metadata(waits)
    for name, value in waits.items():
        monkeypatch.setenv(name, value)

    with metadata_service(port, credentials_delay=1.5):
        session = new_session()
        session.client("sqs", endpoint_url="http://127.0.0.1:9")

        assert session.get_credentials().get_frozen_credentials().access_key == KEY


def test_a_session_makes_no_client_without_credentials_and_asks_again_for_the_next(port):
    # Given no metadata service yet (the port is closed)
    session = new_session()
    with pytest.raises(NoCredentialsError):
        session.client("dynamodb", endpoint_url="http://127.0.0.1:9")

    # Then once it answers, the same session's next client has the role's credentials
    with metadata_service(port):
        client = session.client("dynamodb", endpoint_url="http://127.0.0.1:9")
    assert client._request_signer._credentials.get_frozen_credentials().access_key == KEY


def test_explicit_keys_need_no_metadata_service(port):
    session = new_session(aws_access_key_id="AKIAEXPLICIT", aws_secret_access_key="secret")

    client = session.client("sqs", endpoint_url="http://127.0.0.1:9")

    assert client._request_signer._credentials.access_key == "AKIAEXPLICIT"


def test_the_operators_metadata_settings_are_kept(port, monkeypatch):
    monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", "1")
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "1")
    wait_longer_for_instance_metadata(os.environ)
    with metadata_service(port, credentials_delay=1.5):
        session = new_session()
        with pytest.raises(NoCredentialsError):
            session.client("sqs", endpoint_url="http://127.0.0.1:9")
