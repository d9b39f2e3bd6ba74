"""Repository commands through the build user's runner (skynet_tasks.build_user, started as
``python -m workers.buildrun``), with systemd played by a script.

The script does what ``skynet-build@ID.service`` does, without changing user (the user change
is the stack-built cluster's to show: tests/test_stack_users.py): it records the unit it was asked
to start and runs the runner for the request named in it. Build steps, lifecycle hooks and the
health command all go through it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from storekit import moto_artifact_store

from skynet_tasks import artifacts, commands
from skynet_tasks import build_user as buildrun
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.installer import InstanceLayout, UpdateContext, UpdateFailed, install
from skynet_tasks.services import ProcessServices

pytestmark = pytest.mark.timeout(60)

BUCKET = "skynet-local-repo-000000000000"


def fake_systemd(tmp_path: Path, root: Path, runs: bool = True) -> list[str]:
    """A ``systemctl`` that starts ``skynet-build@ID.service`` as the unit does (and notes each unit in
    ``units.log`` beside it)."""
    script = tmp_path / "systemctl"
    run = (f'id=${{3#skynet-build@}}; exec {sys.executable} -m workers.buildrun run {root} "${{id%.service}}"'
           if runs else "exit 1")
    script.write_text(f'#!/bin/sh\n[ "$1 $2" = "start --wait" ] || exit 5\necho "$3" >> {tmp_path}/units.log\n'
                      f'{run}\n')
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


@pytest.fixture(scope="module")
def store():
    with moto_artifact_store(BUCKET) as artifact_store:
        yield artifact_store


def release(store: ArtifactStore, tmp_path: Path, sha: str, spec: str) -> tuple[artifacts.Manifest,
                                                                            artifacts.ExpectedRelease]:
    """A release of one ``skynet.yml`` in the bucket, and the ledger's record of it."""
    tree = tmp_path / f"tree-{sha[:4]}"
    tree.mkdir()
    (tree / "skynet.yml").write_text(spec)
    tarball = tmp_path / f"{sha[:4]}.tar.gz"
    files = artifacts.pack(tree, tarball)
    manifest = artifacts.Manifest(repo="/srv/app.git", branch="main", sha=sha, sha256=artifacts.sha256_file(tarball),
                                  size=tarball.stat().st_size, files=files, builder="i-b", built_at=0.0,
                                  build_log_key="logs/x", artifact_key=f"app/main/{sha}/artifact.tar.gz")
    store.upload_file(tarball, manifest.artifact_key)
    return manifest, artifacts.ExpectedRelease(sha, manifest.sha256, manifest.size)


def instance(store: ArtifactStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UpdateContext:
    """An instance whose boot marked its build folder, its ``systemctl`` the fake one."""
    (root / "build").mkdir(parents=True)
    (root / "build" / buildrun.MARKER).write_text("build steps run as the build user\n")
    fake_systemd(tmp_path, root)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return UpdateContext(layout=InstanceLayout(root), store=store,
                         services=ProcessServices(root / "run", root / "logs" / "app.log"), env={}, app_port=1)


HOOKED = """build: []
hooks:
  after_install: [[sh, -c, "echo after_install ran in $(basename $PWD)"]]
  validate: [[sh, -c, "echo validate ran"]]
health:
  command: [sh, -c, "echo health command ran"]
"""


def test_lifecycle_hooks_and_the_health_command_run_through_the_build_users_unit(store, tmp_path, monkeypatch):
    root = tmp_path / "root"
    ctx = instance(store, root, tmp_path, monkeypatch)
    manifest, expected = release(store, tmp_path, "c" * 40, HOOKED)

    text = install(ctx, manifest, expected)

    assert f"after_install ran in {'c' * 40}" in text and "validate ran" in text and "health command ran" in text
    units = (tmp_path / "units.log").read_text().split()
    assert len(units) == 3 and all(re.fullmatch(r"skynet-build@[0-9a-f]{32}\.service", u) for u in units), units
    assert ctx.layout.current_release() == "c" * 40


def test_a_failing_hook_run_as_the_build_user_fails_the_update_with_its_output(store, tmp_path, monkeypatch):
    root = tmp_path / "root"
    ctx = instance(store, root, tmp_path, monkeypatch)
    manifest, expected = release(store, tmp_path, "d" * 40, "build: []\nhooks:\n  before_install: "
                                 "[[sh, -c, 'echo migration refused; exit 4']]\n")

    with pytest.raises(UpdateFailed, match="exit status 4") as failed:
        install(ctx, manifest, expected)

    assert "migration refused" in failed.value.log_text
    assert ctx.layout.current_release() is None  # nothing was switched to
    assert (tmp_path / "units.log").read_text().count("skynet-build@") == 1
