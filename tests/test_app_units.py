"""The app's systemd unit: valid for systemd, in a cgroup of its own, and running what the worker wrote.

systemd is not PID 1 here, so the unit is checked with ``systemd-analyze verify`` (Debian's
systemd package), and its ExecStart is run as systemd would run it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from skynet_tasks.services import USE_SYSTEMD, SystemdServices
from workers.units import UnitError, install_units, render_app_unit

pytestmark = pytest.mark.timeout(60)


def unit_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def fake_systemctl(tmp_path: Path) -> Path:
    script = tmp_path / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    script.chmod(0o755)
    return script


def test_the_rendered_app_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "skynet-app.service"
    unit.write_text(render_app_unit(sys.executable, tmp_path / "root"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_unit_systemd_would_refuse_fails_the_same_check(tmp_path):
    # The check above can fail: an ExecStart that does not exist is an error for systemd-analyze.
    unit = tmp_path / "skynet-app.service"
    unit.write_text(render_app_unit(tmp_path / "no-python", tmp_path / "root"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "no-python" in result.stderr


def test_the_app_unit_restarts_a_failed_app_logs_to_journald_and_is_not_bound_to_the_worker(tmp_path):
    settings = unit_settings(render_app_unit("/opt/skynet/bin/python", "/srv/skynet"))
    assert settings["Restart"] == "on-failure" and settings["StandardOutput"] == "journal"
    assert settings["StartLimitBurst"] == "5" and settings["StartLimitIntervalSec"] == "10"
    assert settings["KillMode"] == "control-group"
    assert not {"PartOf", "BindsTo", "Requires"} & set(settings)  # a worker restart does not reach it
    assert settings["ConditionPathExists"] == "/srv/skynet/run/app.json"


def test_the_unit_runs_what_systemd_services_wrote(tmp_path):
    root = tmp_path / "root"
    (root / "current").mkdir(parents=True)
    settings = unit_settings(render_app_unit(sys.executable, root))
    # systemd copies the credential named in LoadCredential into the unit's credentials folder (%d).
    name, source = settings["LoadCredential"].split(":", 1)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    exec_start = settings["ExecStart"].replace("%d", str(credentials))
    SystemdServices(root / "run" / "app.json", systemctl=[str(fake_systemctl(tmp_path))]).restart(
        [sys.executable, "-c", "import json, os; print(json.dumps([os.getcwd(), os.environ.get('PORT')]))"],
        root / "current", {"PORT": "8123"})
    (credentials / name).write_bytes(Path(source).read_bytes())
    result = subprocess.run(shlex.split(exec_start), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [str(root / "current"), "8123"]


def test_the_unit_fails_clearly_on_a_missing_spec(tmp_path):
    exec_start = unit_settings(render_app_unit(sys.executable, tmp_path))["ExecStart"].replace("%d", str(tmp_path))
    result = subprocess.run(shlex.split(exec_start), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "cannot read the app's specification" in result.stderr


def test_install_units_writes_both_units_marks_the_root_and_enables_the_app(tmp_path):
    systemctl = fake_systemctl(tmp_path)
    written = install_units(tmp_path / "units", tmp_path / "root", sys.executable, systemctl=[str(systemctl)])
    assert [p.name for p in written] == ["skynet-worker.service", "skynet-app.service", "skynet-build@.service"]
    assert (tmp_path / "root" / USE_SYSTEMD).exists()
    assert (tmp_path / "calls").read_text().splitlines() == ["daemon-reload", "enable skynet-app.service"]


def test_the_cli_installs_the_units(tmp_path):
    result = subprocess.run([sys.executable, "-m", "skynet_tasks.cli", "instance", "install-units", "--unit-dir",
                             str(tmp_path / "units"), "--root", str(tmp_path / "root"), "--no-systemctl"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "units" / "skynet-app.service").exists() and (tmp_path / "root" / USE_SYSTEMD).exists()


def test_a_root_that_cannot_go_into_a_unit_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(UnitError, match="the instance root"):
        install_units(tmp_path / "units", tmp_path / "my root", sys.executable, systemctl=None)
    assert not (tmp_path / "units").exists() and not (tmp_path / "my root").exists()


def test_the_worker_drives_the_app_through_systemd_once_the_units_are_installed(tmp_path):
    from skynet_tasks.context import Context
    from skynet_tasks.installer import InstanceLayout
    from skynet_tasks.services import ProcessServices

    class Fake:  # what Context.services reads: the settings' root and the layout
        settings = type("S", (), {"root": tmp_path / "root"})()
        layout = InstanceLayout(tmp_path / "root")

    fake = Fake()
    assert isinstance(Context.services(fake), ProcessServices)  # type: ignore[arg-type]
    install_units(tmp_path / "units", tmp_path / "root", sys.executable, systemctl=None)
    services = Context.services(fake)  # type: ignore[arg-type]
    assert isinstance(services, SystemdServices) and services.spec_file == tmp_path / "root" / "run" / "app.json"


def verifiable(name: str, text: str, tmp_path: Path) -> Path:
    """A unit's text made checkable here: the shipped paths of the agent point at this machine's."""
    root = tmp_path / "root"
    for folder in ("run/stack", "logs/app"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    unit = tmp_path / "check" / name.replace("@.", "@0123456789abcdef0123456789abcdef.")
    unit.parent.mkdir(exist_ok=True)
    unit.write_text(text.replace("/opt/skynet/bin/skynet", str(Path(sys.executable).with_name("skynet")))
                    .replace("/opt/skynet/bin/python", sys.executable))
    return unit


@pytest.mark.parametrize("name", ["skynet-worker.service", "skynet-app.service", "skynet-build@.service"])
def test_each_unit_runs_as_its_own_user_hardened(name, tmp_path):
    units = install_units(tmp_path / "units", tmp_path / "root", sys.executable, systemctl=None)
    text = next(p for p in units if p.name == name).read_text()
    settings = unit_settings(text)
    unit = verifiable(name, text, tmp_path)

    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                              capture_output=True, text=True, timeout=30)

    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    assert settings["User"] == {"skynet-worker.service": "skynet", "skynet-app.service": "www-data",
                                "skynet-build@.service": "skynet-build"}[name]
    assert settings["NoNewPrivileges"] == "true" and settings["ProtectSystem"] == "strict"
    assert settings["PrivateTmp"] == "true" and settings["ProtectHome"] == "true"
    assert settings["CapabilityBoundingSet"] == ""  # no capability at all, not even to bind a low port
    assert settings["ReadWritePaths"].split()  # strict, with the writable folders named
    exposure = float(security.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert exposure <= 3.0, security.stdout  # systemd's own score: 10 is a unit with no hardening


def test_a_unit_without_hardening_scores_worse_than_the_bound(tmp_path):
    # The bound above can fail: the shipped worker unit with its hardening lines removed exceeds it.
    units = install_units(tmp_path / "units", tmp_path / "root", sys.executable, systemctl=None)
    text = next(p for p in units if p.name == "skynet-worker.service").read_text()
    bare = "\n".join(line for line in text.splitlines() if not line.startswith(
        ("Protect", "Private", "Restrict", "NoNew", "User", "Group", "Capability", "SystemCall", "Lock", "UMask",
         "RemoveIPC")))
    unit = verifiable("skynet-worker.service", bare, tmp_path)
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                              capture_output=True, text=True, timeout=30)
    exposure = float(security.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert exposure > 3.0


def test_install_units_allows_the_worker_to_restart_only_the_apps_unit(tmp_path):
    install_units(tmp_path / "units", tmp_path / "root", sys.executable, systemctl=None,
                  polkit_dir=tmp_path / "polkit")
    rule = (tmp_path / "polkit" / "50-skynet-worker.rules").read_text()

    assert 'action.id == "org.freedesktop.systemd1.manage-units"' in rule
    assert 'action.lookup("unit") == "skynet-app.service"' in rule and 'subject.user == "skynet"' in rule
    assert r"/^skynet-build@[0-9a-f]{32}\.service$/" in rule  # build steps, whose unit fixes the user
    # ... started, or stopped when the worker process that started one died (skynet_tasks.build_user)
    assert '["start", "stop"].indexOf(action.lookup("verb"))' in rule
    assert "polkit.Result.YES" in rule and rule.count("polkit.Result.YES") == 1
