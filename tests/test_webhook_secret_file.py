"""How ``skynet webhook serve`` treats its secret file before it serves anything.

The server refuses to start without a secret or with a secret file others may read (nothing of the
secret is printed), and a private secret file is read and stripped. No server is started: each check
runs the command in its own process, or reads the file as the server does.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)


def test_the_server_refuses_to_start_without_a_secret(tmp_path):
    empty = tmp_path / "secret"
    empty.write_text("\n")
    empty.chmod(0o600)  # private, so that what is refused is its emptiness
    routes = tmp_path / "routes.json"
    routes.write_text('{"routes": []}')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_WEBHOOK")}

    for extra in (["--secret-file", str(empty)], []):
        result = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "webhook", "serve", "--routes",
                                 str(routes), "--port", "1", *extra], env=environment, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode != 0
        assert "refusing to accept unsigned hooks" in result.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_the_server_refuses_to_start_with_a_secret_file_others_may_read(tmp_path, mode):
    secret = tmp_path / "secret"
    secret.write_text("a-secret-of-forty-characters-0123456789\n")
    secret.chmod(mode)
    routes = tmp_path / "routes.json"
    routes.write_text('{"routes": []}')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SKYNET_WEBHOOK")}

    result = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "webhook", "serve", "--routes", str(routes),
                             "--port", "1", "--secret-file", str(secret)], env=environment, capture_output=True,
                            text=True, timeout=50, check=False)

    assert result.returncode != 0
    assert "readable by others" in result.stderr and "chmod 600" in result.stderr
    assert "a-secret-of-forty" not in result.stderr + result.stdout


def test_a_private_secret_file_is_read_and_stripped(tmp_path):
    from skynet_tasks.webhook.service import read_secret

    secret = tmp_path / "secret"
    secret.write_text("  the-secret \n")
    secret.chmod(0o400)

    assert read_secret(secret) == b"the-secret"
