"""The local stand-in for skynet-app.service: the worker's systemctl calls, answered by a root process.

The stand-in runs here in a thread (this test runs as root, as an instance's boot does); the
worker's user is ``nobody``. The app it starts runs as www-data, and nothing but root and the
worker's user may ask it anything.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skynet_tasks.appspec import AppSpec, write_spec
from workers import appctl
from workers.accounts import Account

pytestmark = pytest.mark.timeout(60)
UNIT = appctl.APP_UNIT


@pytest.fixture
def stand_in() -> Iterator[tuple[Path, Path]]:
    """An instance root in a folder every user may enter, and the stand-in's socket."""
    top = Path(tempfile.mkdtemp(prefix="skynet-appctl-test-"))
    top.chmod(0o755)
    root = top / "skynet"
    (root / "run").mkdir(parents=True)
    accounts = (root, Account.named("nobody"), Account.named("daemon"))  # the worker's user, the build's
    threading.Thread(target=appctl.serve, args=accounts, daemon=True).start()
    socket_path = appctl.control_dir(root) / appctl.SOCKET
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield root, socket_path
    appctl.systemctl(["stop", UNIT], socket_path)
    shutil.rmtree(top, ignore_errors=True)


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_the_worker_restarts_the_app_which_runs_as_www_data(stand_in, capsys):
    root, socket_path = stand_in
    write_spec(root / "run" / "app.json", AppSpec.of(["/bin/sleep", "60"], Path("/"), {}))

    assert appctl.systemctl(["is-active", "--quiet", UNIT], socket_path) == appctl.INACTIVE
    assert appctl.systemctl(["restart", UNIT], socket_path) == 0
    assert appctl.systemctl(["is-active", "--quiet", UNIT], socket_path) == 0
    capsys.readouterr()
    assert appctl.systemctl(["show", "--property", "MainPID", "--value", UNIT], socket_path) == 0
    pid = int(capsys.readouterr().out)

    assert uid_of(pid) == 33  # www-data
    assert appctl.systemctl(["stop", UNIT], socket_path) == 0
    assert appctl.systemctl(["is-active", "--quiet", UNIT], socket_path) == appctl.INACTIVE


def test_a_missing_spec_fails_the_restart_and_another_unit_is_not_found(stand_in, capsys):
    _, socket_path = stand_in

    assert appctl.systemctl(["restart", UNIT], socket_path) == 1
    assert "cannot read the app's specification" in capsys.readouterr().err
    assert appctl.systemctl(["restart", "ssh.service"], socket_path) == appctl.NOT_FOUND


def test_a_user_other_than_the_worker_is_refused(stand_in):
    _, socket_path = stand_in
    connect = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])"

    asked = subprocess.run(["setpriv", "--reuid", "www-data", "--regid", "www-data", "--clear-groups",
                            "/usr/bin/python3", "-c", connect, str(socket_path)],
                           capture_output=True, text=True, timeout=30, check=False)
    as_worker = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                                "/usr/bin/python3", "-c", connect, str(socket_path)],
                               capture_output=True, text=True, timeout=30, check=False)

    assert asked.returncode != 0 and "Permission denied" in asked.stderr
    assert as_worker.returncode == 0, as_worker.stderr
