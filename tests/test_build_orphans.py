"""A build step left running by a worker process that died is stopped before the instance's next step.

On EC2 a step is a unit, ``skynet-build@ID.service``, that the worker starts with ``systemctl start
--wait``; killing the worker's process (its task's hard time limit, the OOM killer) kills that client,
not the unit. Here the unit is the local stand-in's (``workers.appctl``, run in a thread as on an
instance's boot), the worker a process of its own that asks for a step and is killed, and the step a
shell that records its pid and sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skynet_tasks import build_user, commands
from skynet_tasks.proctable import process_alive
from workers import appctl
from workers.accounts import Account

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def instance() -> Iterator[tuple[Path, list[str]]]:
    """An instance root whose build folder runs steps through the stand-in, and the worker's ``systemctl``."""
    top = Path(tempfile.mkdtemp(prefix="skynet-orphans-test-"))
    root = top / "skynet"
    (root / "run").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "build" / build_user.MARKER).write_text("build steps run as the build user\n")
    # Root plays the worker's and the build user's parts: which user runs a step is tests/test_stack_users.py's.
    threading.Thread(target=appctl.serve, args=(root, Account.named("root"), Account.named("root")),
                     daemon=True).start()
    socket_path = appctl.control_dir(root) / appctl.SOCKET
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield root, [sys.executable, "-m", "workers.appctl", "systemctl", "--socket", str(socket_path)]
    shutil.rmtree(top, ignore_errors=True)


def worker_asking_for_a_step(root: Path, systemctl: list[str], pid_file: Path) -> subprocess.Popen[bytes]:
    """A worker process waiting on a long step, which writes its own pid to ``pid_file`` first."""
    code = (f"from pathlib import Path\nfrom skynet_tasks import build_user, commands\n"
            f"build_user.run_step(['sh', '-c', 'echo $$ > {pid_file}; exec sleep 60'], cwd=Path('/'), "
            f"env={{'PATH': '/usr/bin:/bin'}}, timeout=60, log=commands.CommandLog(), "
            f"work_root=Path({str(root / 'build')!r}), systemctl={systemctl!r})\n")
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})


def step_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.05)
    raise AssertionError("the step never started")


def killed_while_its_step_ran(root: Path, systemctl: list[str], pid_file: Path) -> tuple[int, int]:
    """A worker process killed while its step ran: its pid, and the pid of the step it left running."""
    worker = worker_asking_for_a_step(root, systemctl, pid_file)
    orphan = step_pid(pid_file)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return worker.pid, orphan


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_step_whose_worker_process_was_killed_is_stopped_before_the_next_step(instance, tmp_path):
    root, systemctl = instance
    # Given a worker process killed while its step ran
    worker, orphan = killed_while_its_step_ran(root, systemctl, tmp_path / "step.pid")
    # ... whose step outlives it (as a unit outlives its ``systemctl start --wait``)
    assert not gone_within(orphan, 1.0)

    # When the instance's next step runs
    log = commands.CommandLog()
    build_user.run_step(["sh", "-c", "echo the next step"], cwd=Path("/"), env={"PATH": "/usr/bin:/bin"},
                        timeout=30, log=log, work_root=root / "build", systemctl=systemctl)

    # Then the orphaned step was stopped first, its request forgotten, and the build log says so
    assert gone_within(orphan, 5.0)
    assert "the next step" in log.text()
    assert f"left running by worker process {worker}, which died" in log.text()
    assert list((root / "build" / build_user.REQUESTS).iterdir()) == []


def test_a_step_whose_worker_process_still_waits_for_it_is_left_alone(instance, tmp_path):
    root, systemctl = instance
    # Given a worker process waiting on its step
    worker = worker_asking_for_a_step(root, systemctl, tmp_path / "step.pid")
    try:
        running = step_pid(tmp_path / "step.pid")

        # When another process of the instance looks for orphaned steps
        stopped = build_user.stop_orphaned_steps(root / "build" / build_user.REQUESTS, commands.CommandLog(),
                                                 systemctl)

        # Then the step runs on
        assert stopped == []
        assert process_alive(running)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        build_user.stop_orphaned_steps(root / "build" / build_user.REQUESTS, commands.CommandLog(), systemctl)


def test_a_worker_that_starts_again_stops_the_step_its_killed_predecessor_left_running(instance, tmp_path):
    root, systemctl = instance
    # Given a worker process killed while its step ran
    worker, orphan = killed_while_its_step_ran(root, systemctl, tmp_path / "step.pid")

    # When the instance's worker starts again (workers/launch.py), before any step
    said = build_user.stop_orphaned_steps_at_start(root / "build", systemctl)

    # Then the step is stopped, and the worker's log says which
    assert gone_within(orphan, 5.0)
    assert len(said) == 1 and f"left running by worker process {worker}, which died" in said[0]
    assert list((root / "build" / build_user.REQUESTS).iterdir()) == []
    # ... and an instance whose steps run as the worker (no build user) has none to stop
    assert build_user.stop_orphaned_steps_at_start(tmp_path, systemctl) == []
