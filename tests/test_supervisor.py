"""The local supervisor: systemd's restart policy as data, log rotation, clean exits, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skynet_tasks.appspec import AppSpec, write_spec
from skynet_tasks.supervisor import RestartPolicy, clean_exit, next_delay

pytestmark = pytest.mark.timeout(60)

POLICY = RestartPolicy(burst=3, interval=10, first_delay=0.1, max_delay=0.3)


def test_each_failure_in_a_row_doubles_the_delay_up_to_its_cap():
    assert next_delay([100.0], 100.0, POLICY) == 0.1
    assert next_delay([100.0, 100.5], 100.5, POLICY) == 0.2
    assert next_delay([0.0, 1.0, 2.0], 2.0, RestartPolicy(burst=9, first_delay=0.1, max_delay=0.3)) == 0.3


def test_burst_failures_within_the_interval_give_up_and_older_ones_are_forgotten():
    assert next_delay([100.0, 101.0, 102.0], 102.0, POLICY) is None
    assert next_delay([80.0, 101.0, 102.0], 102.0, POLICY) == 0.2  # the first is over 10 s old


def test_exits_count_as_failures_as_systemd_counts_them():
    assert clean_exit(0) and clean_exit(-signal.SIGTERM) and clean_exit(-signal.SIGINT)
    assert not clean_exit(1) and not clean_exit(-signal.SIGKILL) and not clean_exit(-signal.SIGSEGV)


def test_a_policy_that_makes_no_sense_is_refused():
    with pytest.raises(ValueError, match="invalid restart policy"):
        RestartPolicy(burst=0)


def supervise(tmp_path: Path, code: str, *extra: str) -> subprocess.Popen[bytes]:
    write_spec(tmp_path / "app.json", AppSpec.of([sys.executable, "-c", code], tmp_path, {}))
    return subprocess.Popen([sys.executable, "-m", "skynet_tasks.supervisor", str(tmp_path / "app.json"),
                             "--pid-file", str(tmp_path / "sup.pid"), "--main-pid-file", str(tmp_path / "app.pid"),
                             "--log-file", str(tmp_path / "logs" / "app.log"), *extra], stderr=subprocess.PIPE)


def test_the_app_log_is_rotated_and_old_logs_are_bounded(tmp_path):
    chatty = "import sys\nfor i in range(4000): print('line %05d ' % i + 'x' * 40)\n"
    supervisor = supervise(tmp_path, chatty, "--log-max-bytes", "20000", "--log-backups", "3")
    assert supervisor.wait(30) == 0  # a clean exit of the app: not restarted, the supervisor leaves
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    assert all((tmp_path / "logs" / name).stat().st_size <= 20000 for name in logs)
    assert "line 03999" in (tmp_path / "logs" / "app.log").read_text()  # the newest lines are kept


def test_an_app_stopped_by_sigterm_is_not_restarted(tmp_path):
    supervisor = supervise(tmp_path, "import time; time.sleep(60)")
    deadline = time.monotonic() + 10
    while not (tmp_path / "app.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(15) == 0
    assert "not restarting" in (tmp_path / "logs" / "app.log").read_text()


def test_a_malformed_spec_is_a_clear_error(tmp_path):
    (tmp_path / "app.json").write_text('{"command": "not a list"}')
    supervisor = subprocess.Popen([sys.executable, "-m", "skynet_tasks.supervisor", str(tmp_path / "app.json"),
                                   "--pid-file", str(tmp_path / "p"), "--main-pid-file", str(tmp_path / "m"),
                                   "--log-file", str(tmp_path / "app.log")], stderr=subprocess.PIPE)
    _, err = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 2 and b"malformed" in err
    assert not (tmp_path / "app.log").exists() or "started" not in (tmp_path / "app.log").read_text()
