"""Build steps through the build user's runner (workers.buildrun), with systemd played by a script.

The script does what ``skynet-build@ID.service`` does, without changing user (the user change
is the stack-built cluster's to show: tests/test_stack_users.py): it runs the runner for the
request named in the unit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from skynet_tasks import commands
from workers import buildrun

pytestmark = pytest.mark.timeout(60)


def fake_systemd(tmp_path: Path, root: Path, runs: bool = True) -> list[str]:
    script = tmp_path / "systemctl"
    run = (f'id=${{3#skynet-build@}}; exec {sys.executable} -m workers.buildrun run {root} "${{id%.service}}"'
           if runs else "exit 1")
    script.write_text(f'#!/bin/sh\n[ "$1 $2" = "start --wait" ] || exit 5\n{run}\n')
    script.chmod(0o755)
    return [str(script)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    work_root = tmp_path / "root" / "build"
    (work_root / "tree").mkdir(parents=True)
    (work_root / buildrun.MARKER).write_text("build steps run as the build user\n")
    return tmp_path / "root"


def test_a_step_runs_through_the_runner_and_its_output_is_in_the_build_log(root, tmp_path):
    log = commands.CommandLog()
    buildrun.run_step(["sh", "-c", "echo built > out.txt; echo hello from the step"], cwd=root / "build" / "tree",
                      env={"PATH": "/usr/bin:/bin"}, timeout=30, log=log, work_root=root / "build",
                      systemctl=fake_systemd(tmp_path, root))

    assert "hello from the step" in log.text()
    assert (root / "build" / "tree" / "out.txt").read_text() == "built\n"
    assert list((root / "build" / buildrun.REQUESTS).iterdir()) == []  # request and result removed


def test_a_failing_step_fails_the_build_with_its_exit_status(root, tmp_path):
    log = commands.CommandLog()
    with pytest.raises(commands.CommandFailed, match="exit status 3"):
        buildrun.run_step(["sh", "-c", "echo about to fail; exit 3"], cwd=root / "build" / "tree",
                          env={"PATH": "/usr/bin:/bin"}, timeout=30, log=log, work_root=root / "build",
                          systemctl=fake_systemd(tmp_path, root))
    assert "about to fail" in log.text()


def test_a_runner_that_never_reports_fails_the_step_clearly(root, tmp_path):
    with pytest.raises(commands.CommandFailed, match="the build user's runner did not report"):
        buildrun.run_step(["true"], cwd=root / "build" / "tree", env={}, timeout=30, log=commands.CommandLog(),
                          work_root=root / "build", systemctl=fake_systemd(tmp_path, root, runs=False))


def test_without_the_boots_marker_the_step_runs_in_this_process(tmp_path):
    log = commands.CommandLog()
    buildrun.run_step(["sh", "-c", "echo direct"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=30,
                      log=log, work_root=tmp_path, systemctl=["/nonexistent/systemctl"])
    assert "direct" in log.text()


def test_the_work_tree_is_shared_with_the_build_users_group(tmp_path):
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "app.py").write_text("x = 1\n")
    (tree / "src" / "app.py").chmod(0o644)

    buildrun.share_with_build_user(tree)

    assert (tree / "src" / "app.py").stat().st_mode & 0o060 == 0o060
    assert (tree / "src").stat().st_mode & 0o2070 == 0o2070
