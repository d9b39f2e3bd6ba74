"""First boot: the wheel the stack pins is downloaded and verified before anything installs it.

The script runs as user-data would run it, before Skynet is installed: the file's text on a
Python's standard input, with only the variables the launch template exports, against moto's server.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skynet_tasks.aws import aws_for
from skynet_tasks.local.motoserver import MotoServer

pytestmark = pytest.mark.timeout(120)

SCRIPT = Path(__file__).parent.parent / "workers" / "wheel.py"
BUCKET = "skynet-boot-repo-123456789012"
WHEEL = b"the agent wheel's bytes" * 1000


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(log_file=tmp_path_factory.mktemp("moto") / "moto.log")
    s3 = aws_for(server.environment()).s3
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key(WHEEL), Body=WHEEL)
    yield server
    server.stop()


def key(content: bytes) -> str:
    return f"agent/wheels/{hashlib.sha256(content).hexdigest()}/skynet-0.1.0-py3-none-any.whl"


def boot(moto: MotoServer, dest: Path, wheel_key: str, sha256: str) -> subprocess.CompletedProcess[str]:
    """Run workers/wheel.py the way user-data does: no package installed, its text on stdin."""
    env = {**moto.environment(), "PATH": "/usr/bin:/bin", "SKYNET_REPO_BUCKET": BUCKET,
           "SKYNET_WHEEL_KEY": wheel_key, "SKYNET_WHEEL_SHA256": sha256}
    return subprocess.run([sys.executable, "-", "--dest", str(dest)], input=SCRIPT.read_text(), env=env,
                          capture_output=True, text=True, timeout=60, check=False, cwd=dest)


def test_the_pinned_wheel_is_downloaded_verified_and_its_path_printed(moto, tmp_path):
    result = boot(moto, tmp_path, key(WHEEL), hashlib.sha256(WHEEL).hexdigest())

    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == tmp_path / "skynet-0.1.0-py3-none-any.whl"
    assert path.read_bytes() == WHEEL
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_wheel_whose_sha256_differs_is_refused_and_deleted(moto, tmp_path):
    pinned = hashlib.sha256(b"the wheel the operator deployed").hexdigest()

    result = boot(moto, tmp_path, key(WHEEL), pinned)

    assert result.returncode == 1 and result.stdout == ""
    assert f"but the stack pins {pinned}" in result.stderr and "not installed" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_wheel_fails_the_boot_and_leaves_nothing(moto, tmp_path):
    missing = key(b"never uploaded")

    result = boot(moto, tmp_path, missing, hashlib.sha256(b"never uploaded").hexdigest())

    assert result.returncode == 1
    assert f"cannot download s3://{BUCKET}/{missing}" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("wheel_key", "sha256", "message"), [
    ("agent/wheels/x/skynet.tar.gz", "0" * 64, "does not end in a wheel file name"),
    ("agent/wheels/x/skynet-0.1.0-py3-none-any.whl", "not-a-sha", "is not a sha256"),
    ("agent/wheels/x/skynet-0.1.0-py3-none-any.whl", "", "--sha256 is required"),
])
def test_bad_arguments_are_refused_before_any_download(moto, tmp_path, wheel_key, sha256, message):
    result = boot(moto, tmp_path, wheel_key, sha256)

    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []
