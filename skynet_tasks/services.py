"""Starting and stopping an instance's app service.

Two implementations of one contract: ``ProcessServices`` runs the app under a
supervisor process of its own (``skynet_tasks.supervisor``: local mode, and any
host without systemd), ``SystemdServices`` drives the ``skynet-app.service`` unit
(EC2, installed by ``workers.units``). Either way the app lives outside the
worker's process group and cgroup: it keeps serving when the worker stops, is
killed or updates itself, and it is restarted when it crashes.

Both write what to run to ``ROOT/run/app.json`` (``skynet_tasks.appspec``), which is
what the supervisor or the unit start, again after every crash.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess  # nosec B404 - systemctl and the supervisor, fixed arguments
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from skynet_tasks.appspec import AppSpec, AppSpecError, write_spec
from skynet_tasks.proctable import process_alive
from skynet_tasks.settings import child_environment
from skynet_tasks.supervisor import RestartPolicy

log = logging.getLogger(__name__)

SPEC_FILE = "app.json"  # in the run folder
USE_SYSTEMD = "use-systemd"  # in the instance root: the app runs as skynet-app.service


class ServiceError(Exception):
    """The service could not be started or stopped."""


class Services(Protocol):
    """Starts, stops and watches an instance's app service."""

    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str]) -> None:
        """Stop the app and start ``command`` in its place (no command: only stop it)."""

    def stop(self) -> None:
        """Stop the app."""

    def running(self) -> bool:
        """Whether the app runs."""

    def main_pid(self) -> int | None:
        """The app's process id, if it runs."""


def _spec(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> AppSpec:
    try:
        return AppSpec.of(command, cwd, env)
    except AppSpecError as error:
        raise ServiceError(str(error)) from error


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class ProcessServices:
    """The app under a supervisor in a session of its own; the supervisor's pid is in ``run_dir/app.pid``."""

    def __init__(self, run_dir: Path, log_file: Path, policy: RestartPolicy | None = None,
                 log_max_bytes: int = 10 * 1024 * 1024, log_backups: int = 5, user: str | None = None) -> None:
        self.user = user  # run the app as this user (this process must be root), as User= in the unit
        self.pid_file = run_dir / "app.pid"
        self.main_pid_file = run_dir / "app.main.pid"
        self.spec_file = run_dir / SPEC_FILE
        self.log_file = log_file
        self.policy = policy or RestartPolicy()
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        run_dir.mkdir(parents=True, exist_ok=True)

    def pid(self) -> int | None:
        """The supervisor's pid, if it runs."""
        pid = _read_pid(self.pid_file)
        return pid if pid is not None and process_alive(pid) else None

    def main_pid(self) -> int | None:
        """The app's own pid, if its supervisor runs it now (not between a crash and its restart)."""
        if self.pid() is None:
            return None
        pid = _read_pid(self.main_pid_file)
        return pid if pid is not None and process_alive(pid) else None

    def running(self) -> bool:
        """Whether the supervisor's app runs."""
        return self.main_pid() is not None

    def stop(self, grace: float = 10.0) -> None:
        """Stop the supervisor and its app: SIGTERM, then SIGKILL to their group after ``grace`` seconds."""
        pid = _read_pid(self.pid_file)
        if pid is None:
            return
        try:
            if process_alive(pid):
                os.kill(pid, signal.SIGTERM)  # the supervisor stops the app, and does not restart it
            else:
                os.killpg(pid, signal.SIGTERM)  # a supervisor killed outright may have left its app running
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + grace
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid) or self._app_left(pid):
            log.warning("app supervisor %s did not stop within %ss; killing its group", pid, grace)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid_file.unlink(missing_ok=True)
        self.main_pid_file.unlink(missing_ok=True)

    def _app_left(self, supervisor: int) -> bool:
        app = _read_pid(self.main_pid_file)
        try:
            return app is not None and process_alive(app) and os.getpgid(app) == supervisor
        except ProcessLookupError:
            return False

    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str],
                start_timeout: float = 15.0) -> None:
        """Stop the app, then start ``command`` under a new supervisor; return once it runs."""
        spec = _spec(command, cwd, env) if command else None
        self.stop()
        if spec is None:
            return
        write_spec(self.spec_file, spec)
        self.main_pid_file.unlink(missing_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        policy = self.policy
        argv = [sys.executable, "-m", "skynet_tasks.supervisor", str(self.spec_file), "--pid-file",
                str(self.pid_file), "--main-pid-file", str(self.main_pid_file), "--log-file", str(self.log_file),
                "--log-max-bytes", str(self.log_max_bytes), "--log-backups", str(self.log_backups),
                "--burst", str(policy.burst), "--interval", str(policy.interval)]
        if self.user is not None:
            argv += ["--user", self.user]
        # The supervisor needs only to import Skynet; the app gets the spec's environment, not this one.
        supervisor_env = child_environment(keep=("PATH", "PYTHONPATH", "LANG"))
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(argv, cwd=self.spec_file.parent, env=supervisor_env, stdout=out,  # noqa: S603  # nosec B603
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + start_timeout
        while self.main_pid() is None:
            if not process_alive(process.pid) or time.monotonic() > deadline:
                raise ServiceError(f"{spec.command[0]} did not start (see {self.log_file})")
            time.sleep(0.02)
        log.info("app started: supervisor %s, app pid %s in %s", process.pid, self.main_pid(), cwd)


class SystemdServices:
    """The app as the systemd unit ``skynet-app.service``, which runs ``spec_file`` (see ``workers.units``)."""

    def __init__(self, spec_file: Path, unit: str = "skynet-app.service",
                 systemctl: Sequence[str] = ("systemctl",)) -> None:
        self.spec_file = spec_file
        self.unit = unit
        self.systemctl = tuple(systemctl)

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.systemctl, *args, self.unit], capture_output=True, text=True,  # noqa: S603  # nosec B603
                              timeout=120, check=False)

    def running(self) -> bool:
        """Whether the unit is active."""
        return self._systemctl("is-active", "--quiet").returncode == 0

    def main_pid(self) -> int | None:
        """The unit's main process (systemd's MainPID), if it runs."""
        result = self._systemctl("show", "--property", "MainPID", "--value")
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            return None
        return pid or None

    def stop(self) -> None:
        """Stop the unit (a failure is logged, not raised)."""
        result = self._systemctl("stop")
        if result.returncode != 0:  # not fatal: a rollback stops the app on its way out of a failure
            log.warning("systemctl stop %s: %s", self.unit, result.stderr.strip())

    def restart(self, command: Sequence[str] | None, cwd: Path, env: Mapping[str, str]) -> None:
        """Write what to run where the unit reads it, then restart the unit."""
        if not command:
            self.stop()
            return
        write_spec(self.spec_file, _spec(command, cwd, env))
        result = self._systemctl("restart")
        if result.returncode != 0:
            raise ServiceError(f"systemctl restart {self.unit}: {result.stderr.strip()}")
