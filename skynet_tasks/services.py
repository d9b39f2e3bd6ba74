"""Starting and stopping an instance's app service.

Two implementations of one contract: ``ProcessServices`` runs the app as a
child process tracked by a pid file (local mode, and any host without systemd),
``SystemdServices`` drives a systemd unit (EC2). The app keeps running when the
worker dies: an instance keeps serving whatever happens to its agent.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """The service could not be started or stopped."""


class Services(Protocol):
    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str]) -> None: ...
    def stop(self) -> None: ...
    def running(self) -> bool: ...


class ProcessServices:
    """The app as a detached process whose pid is kept in ``run_dir/app.pid``."""

    def __init__(self, run_dir: Path, log_file: Path) -> None:
        self.pid_file = run_dir / "app.pid"
        self.log_file = log_file
        run_dir.mkdir(parents=True, exist_ok=True)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self, grace: float = 10.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
                if finished:
                    break
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            log.warning("app pid %s did not stop within %ss; killing it", pid, grace)
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str]) -> None:
        self.stop()
        if not command:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            try:
                process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            except OSError as error:
                raise ServiceError(f"cannot start {command[0]}: {error.strerror}") from error
        self.pid_file.write_text(f"{process.pid}\n")
        log.info("app started: pid %s in %s", process.pid, cwd)


class SystemdServices:
    """The app as a systemd unit (``skynet-app.service`` by default) on an EC2 instance."""

    def __init__(self, unit: str = "skynet-app.service") -> None:
        self.unit = unit

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["systemctl", *args, self.unit], capture_output=True, text=True, timeout=120,
                              check=False)

    def running(self) -> bool:
        return self._systemctl("is-active", "--quiet").returncode == 0

    def stop(self) -> None:
        self._systemctl("stop")

    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str]) -> None:
        # The unit's ExecStart points at ROOT/current; switching the link and restarting is enough.
        result = self._systemctl("restart")
        if result.returncode != 0:
            raise ServiceError(f"systemctl restart {self.unit}: {result.stderr.strip()}")
