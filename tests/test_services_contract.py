"""The app's service contract, run against each implementation (huey's StorageTests mixin style).

``ProcessServices`` runs every case for real: a supervisor in a session of its own, real
processes, real signals. ``SystemdServices`` needs systemd as PID 1, which this machine does
not have: its unit file is checked with ``systemd-analyze verify`` in test_app_units.py, and
here the exact ``systemctl`` calls it makes, through a ``systemctl`` stand-in that records them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from skynet_tasks.proctable import process_alive
from skynet_tasks.services import ProcessServices, ServiceError, SystemdServices
from skynet_tasks.supervisor import RestartPolicy

pytestmark = pytest.mark.timeout(60)

# An app that records what it is, where and with which environment, then waits to be stopped;
# it fails at once while a file named "crash" is in its folder.
APP = """
import json, os, pathlib, sys, time
if pathlib.Path("crash").exists():
    sys.exit(3)
pathlib.Path(sys.argv[1] + ".json").write_text(json.dumps(
    {"pid": os.getpid(), "cwd": os.getcwd(), "greeting": os.environ.get("GREETING")}))
print("serving", sys.argv[1], flush=True)
time.sleep(600)
"""


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s")


def started(folder: Path, name: str) -> dict | None:
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


class ServicesContract:
    """What every implementation of ``Services`` does; a subclass provides the ``services`` fixture."""

    @pytest.fixture
    def app_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "current"
        folder.mkdir()
        (folder / "app.py").write_text(APP)
        return folder

    def command(self, name: str) -> list[str]:
        return [sys.executable, "app.py", name]

    def test_restart_runs_the_command_in_its_folder_with_its_environment(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {"GREETING": "hello"})
        seen = wait_until(lambda: started(app_dir, "first"))
        assert seen["cwd"] == str(app_dir) and seen["greeting"] == "hello"
        assert services.running() and services.main_pid() == seen["pid"]

    def test_restart_replaces_the_running_app_with_the_new_command(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        services.restart(self.command("second"), app_dir, {})
        second = wait_until(lambda: started(app_dir, "second"))
        assert not process_alive(first["pid"])
        assert services.main_pid() == second["pid"]

    def test_stop_stops_the_app(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        services.stop()
        assert not services.running() and services.main_pid() is None
        assert not process_alive(first["pid"])

    def test_restart_without_a_command_stops_the_app(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        services.restart(None, app_dir, {})
        assert not services.running() and not process_alive(first["pid"])

    def test_a_malformed_command_is_refused_and_the_running_app_keeps_running(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        with pytest.raises(ServiceError, match="non-empty strings"):
            services.restart(["python3", ""], app_dir, {})
        assert services.main_pid() == first["pid"]

    def test_a_killed_app_is_started_again(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        (app_dir / "first.json").unlink()
        os.kill(first["pid"], signal.SIGKILL)
        again = wait_until(lambda: started(app_dir, "first"), timeout=5)
        assert again["pid"] != first["pid"]
        assert wait_until(lambda: services.main_pid() == again["pid"])

    def test_an_app_that_keeps_failing_is_given_up(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        (app_dir / "crash").touch()  # from now on it fails as it starts
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: not services.running() and self.given_up(services), timeout=10)
        time.sleep(1.0)  # and it stays down
        assert not services.running()

    def given_up(self, services) -> bool:
        raise NotImplementedError


class TestProcessServices(ServicesContract):
    @pytest.fixture
    def services(self, tmp_path: Path):
        services = ProcessServices(tmp_path / "run", tmp_path / "logs" / "app.log",
                                   policy=RestartPolicy(burst=3, interval=10))
        yield services
        services.stop()

    def given_up(self, services: ProcessServices) -> bool:
        return services.pid() is None  # the supervisor exited

    def test_the_app_runs_outside_the_session_of_whoever_started_it(self, services, app_dir):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        assert os.getsid(first["pid"]) not in (os.getsid(0), os.getpgid(0))

    def test_the_app_output_and_its_restarts_go_to_the_app_log(self, services, app_dir, tmp_path):
        services.restart(self.command("first"), app_dir, {})
        first = wait_until(lambda: started(app_dir, "first"))
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: services.main_pid() not in (None, first["pid"]))
        text = wait_until(lambda: (t := (tmp_path / "logs" / "app.log").read_text()).count("serving first") == 2
                          and t)
        assert f"app exited with -{int(signal.SIGKILL)}; restarting" in text

    def test_a_command_that_cannot_start_fails_the_restart(self, services, app_dir):
        with pytest.raises(ServiceError, match="did not start"):
            services.restart(["/nonexistent/app"], app_dir, {})
        assert not services.running()


def fake_systemctl(tmp_path: Path, active: bool = True, main_pid: int = 4242, fail: str = "") -> Path:
    """A ``systemctl`` that records each call's arguments and answers like systemd would."""
    script = tmp_path / "systemctl"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
case "$1" in
  is-active) {"exit 0" if active else "exit 3"} ;;
  show) echo {main_pid if active else 0} ;;
  {fail or "never-fails"}) echo "Job for skynet-app.service failed." >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return script


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


class TestSystemdServicesCalls:
    def test_restart_writes_what_to_run_then_restarts_the_unit(self, tmp_path):
        spec = tmp_path / "run" / "app.json"
        services = SystemdServices(spec, systemctl=[str(fake_systemctl(tmp_path))])
        services.restart(["python3", "app.py"], tmp_path / "current", {"PORT": "8000"})
        assert calls(tmp_path) == ["restart skynet-app.service"]
        assert json.loads(spec.read_text()) == {"command": ["python3", "app.py"], "cwd": str(tmp_path / "current"),
                                                "env": {"PORT": "8000"}}
        assert spec.stat().st_mode & 0o077 == 0  # it holds the app's environment

    def test_running_and_main_pid_ask_systemd(self, tmp_path):
        up = SystemdServices(tmp_path / "app.json", systemctl=[str(fake_systemctl(tmp_path, active=True))])
        assert up.running() and up.main_pid() == 4242
        assert calls(tmp_path) == ["is-active --quiet skynet-app.service",
                                   "show --property MainPID --value skynet-app.service"]
        down = SystemdServices(tmp_path / "app.json", systemctl=[str(fake_systemctl(tmp_path, active=False))])
        assert not down.running() and down.main_pid() is None

    def test_stop_and_a_restart_without_a_command_stop_the_unit(self, tmp_path):
        services = SystemdServices(tmp_path / "app.json", systemctl=[str(fake_systemctl(tmp_path))])
        services.stop()
        services.restart(None, tmp_path, {})
        assert calls(tmp_path) == ["stop skynet-app.service", "stop skynet-app.service"]

    def test_a_failed_restart_raises_with_what_systemctl_said(self, tmp_path):
        services = SystemdServices(tmp_path / "app.json", systemctl=[str(fake_systemctl(tmp_path, fail="restart"))])
        with pytest.raises(ServiceError, match="Job for skynet-app.service failed"):
            services.restart(["python3", "app.py"], tmp_path, {})

    def test_a_malformed_command_is_refused_and_nothing_changes(self, tmp_path):
        spec = tmp_path / "app.json"
        services = SystemdServices(spec, systemctl=[str(fake_systemctl(tmp_path))])
        services.restart(["python3", "app.py"], tmp_path, {})
        before = spec.read_text()
        with pytest.raises(ServiceError, match="non-empty strings"):
            services.restart(["python3", ""], tmp_path, {})
        assert spec.read_text() == before and calls(tmp_path) == ["restart skynet-app.service"]
