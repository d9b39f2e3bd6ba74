"""The agent wheel's build (``skynet_tasks.stacks.wheels.build_wheel``): one build of a checkout at a time.

pip builds in the checkout itself; two local clusters (or two test workers) building at once would
write over each other's ``build/`` and ``*.egg-info``.
"""

from __future__ import annotations

import fcntl
import threading
import zipfile
from pathlib import Path

import pytest
from clusterkit import wait_for

from skynet_tasks.stacks import StackError
from skynet_tasks.stacks.wheels import build_wheel

pytestmark = pytest.mark.timeout(180)

# A checkout of a project named skynet whose build says when it starts.
SETUP_PY = """import pathlib, setuptools
pathlib.Path(__file__).with_name("build-started").touch()
setuptools.setup()
"""
PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "skynet"
version = "0.0.1"

[tool.setuptools]
py-modules = ["agent"]
"""


def checkout(folder: Path) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "setup.py").write_text(SETUP_PY)
    (folder / "agent.py").write_text("VERSION = 1\n")
    return folder


def blocked_on(path: Path) -> bool:
    """Whether a process waits for the flock on ``path`` (/proc/locks: ``-> FLOCK ... MAJ:MIN:INODE``)."""
    inode = f":{path.stat().st_ino}"
    return any("->" in line and any(field.endswith(inode) for field in line.split())
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_build_waits_while_another_build_of_the_checkout_runs_then_builds(tmp_path):
    project = checkout(tmp_path / "project")
    (project / "build").mkdir()
    built: list[Path] = []
    with open(project / "build" / "skynet-wheel.lock", "w") as lock:
        # Given another build holding the checkout
        fcntl.flock(lock, fcntl.LOCK_EX)
        # When a second build starts
        second = threading.Thread(target=lambda: built.append(build_wheel(tmp_path, project)), daemon=True)
        second.start()
        # Then it waits for the checkout (the kernel lists it as blocked on the lock) without building
        wait_for(lambda: blocked_on(project / "build" / "skynet-wheel.lock"), 60, "the second build to wait")
        assert second.is_alive() and not (project / "build-started").exists()
    # And once the first is done, it builds
    second.join(150)
    assert not second.is_alive() and (project / "build-started").exists()
    (wheel,) = built
    assert wheel.name == "skynet-0.0.1-py3-none-any.whl"
    assert "agent.py" in zipfile.ZipFile(wheel).namelist()


def test_a_failed_build_leaves_the_checkout_free_for_the_next(tmp_path):
    project = checkout(tmp_path / "project")
    (project / "setup.py").write_text("raise SystemExit('broken build')\n")

    with pytest.raises(StackError, match="building the agent wheel failed"):
        build_wheel(tmp_path, project)

    with open(project / "build" / "skynet-wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
