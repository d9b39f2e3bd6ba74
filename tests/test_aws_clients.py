"""The botocore configuration every Skynet client is made with (``skynet_tasks.aws``)."""

from __future__ import annotations

import pytest

from skynet_tasks.aws import RETRY_ATTEMPTS, Aws, client_settings

pytestmark = pytest.mark.timeout(30)


def test_throttling_is_retried_ten_times_in_standard_mode_by_default(monkeypatch):
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile's max_attempts either

    retries = client_settings()["retries"]

    assert retries == {"total_max_attempts": RETRY_ATTEMPTS, "mode": "standard"} and RETRY_ATTEMPTS == 10


def test_an_operators_aws_max_attempts_still_counts(monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")  # (a session makes no client without credentials)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")

    client = Aws().sqs

    assert client_settings()["retries"]["total_max_attempts"] == 2
    assert client.meta.config.retries["total_max_attempts"] == 2
